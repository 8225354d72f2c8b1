"""``python -m mantile.api [--host H] [--port P] [--workers N] [limits]``: serve the HTTP API and the web
page with uvicorn.

Each worker is a process with its own event loop, catalog and limits (``mantile.api.limits``); the
limits come from the flags below, else from ``MANTILE_API_*`` environment variables, else defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import os

import uvicorn

from mantile.api.limits import GuardedHttpToolsProtocol, ServerLimits

HELP = {
    "max_body_bytes": "request body limit in bytes; larger bodies get 413",
    "heavy_concurrency": "estimate requests computed at once per worker",
    "heavy_queue": "estimate requests waiting per worker before a 503",
    "max_connections": "open connections per worker; more are closed at accept",
    "header_timeout_s": "seconds a connection may take to send a complete request head",
    "keep_alive_timeout_s": "seconds an idle keep-alive connection is kept",
    "max_header_bytes": "request line + headers limit in bytes",
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mantile.api", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1); each one "
                        "loads the catalog (~100 MB) and serves requests on its own event loop")
    parser.add_argument("--log-level", default="info",
                        choices=["critical", "error", "warning", "info", "debug"])
    env = ServerLimits.from_env()
    for f in dataclasses.fields(ServerLimits):
        parser.add_argument("--" + f.name.replace("_", "-"), type=float if f.type in (float, "float") else int,
                            default=getattr(env, f.name),
                            help=f"{HELP[f.name]} (default {getattr(env, f.name)}; env MANTILE_API_{f.name.upper()})")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    try:
        limits = ServerLimits(**{f.name: getattr(args, f.name) for f in dataclasses.fields(ServerLimits)})
    except ValueError as e:
        parser.error(str(e))
    os.environ.update(limits.to_env())  # every worker process (and create_app there) reads these
    # loop "auto" (uvicorn's default) is uvloop where it is installed (a dependency off Windows): about twice
    # the requests/s of asyncio's loop on the benchmark (README "HTTP API")
    uvicorn.run("mantile.api.app:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                log_level=args.log_level, http=GuardedHttpToolsProtocol, limit_concurrency=limits.max_connections,
                timeout_keep_alive=int(limits.keep_alive_timeout_s) or 1)


if __name__ == "__main__":
    main()
