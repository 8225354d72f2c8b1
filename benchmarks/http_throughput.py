"""HTTP API throughput of this tree beside a previous commit's, measured in the same run.

    .venv/bin/python benchmarks/http_throughput.py                      # this tree vs HEAD~1
    .venv/bin/python benchmarks/http_throughput.py --ref main --workers 2 --heavy-concurrency 1 --clients 64
    .venv/bin/python benchmarks/http_throughput.py --ref none           # this tree only

Each tree's server (``python -m mantile.api --workers N --heavy-concurrency H``; the ref checked out
into a temporary git worktree) is started in turn on a free port and loaded by ``--clients`` closed-loop clients, each
sending its next ``POST /config/system-metrics`` as soon as its previous answer arrives, for
``--seconds`` after a warm-up. The requests cycle through a few bodies (batch sizes and lengths) so
no answer can be served from a cache. The clients are raw asyncio streams writing HTTP/1.1
keep-alive requests (about 50 us of CPU a request, so the load generator takes little of the
machine it shares with the server). Prints requests/s and the latency p50/p99; not a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: llama_3.1_8b on one H100 under a closed-loop load: the brief's system-metrics body, varied per request
BODIES = [json.dumps({"model_id": "llama_3.1_8b", "hardware_config": "nvidia_h100_80gb", "batch_size": b,
                      "input_seq": s, "output_seq": o, "layers": {"attention": {"tensor_parallel": 1}}}).encode()
          for b in (1, 8, 32, 128) for s, o in ((512, 128), (2048, 256), (4096, 512))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(body: bytes) -> bytes:
    return (b"POST /config/system-metrics HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


async def client(port: int, stop: float, start: float, latencies: list[float], errors: list[int], k: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = k
    while True:
        t0 = time.perf_counter()
        if t0 >= stop:
            break
        writer.write(request(BODIES[i % len(BODIES)]))
        i += 1
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        await reader.readexactly(length)
        t1 = time.perf_counter()
        if not head.startswith(b"HTTP/1.1 200"):
            errors.append(int(head[9:12]))
        elif t0 >= start:
            latencies.append(t1 - t0)
    writer.close()


async def load(port: int, clients: int, seconds: float, warmup: float) -> tuple[float, float, float, int]:
    now = time.perf_counter()
    start, stop = now + warmup, now + warmup + seconds
    latencies: list[float] = []
    errors: list[int] = []
    await asyncio.gather(*(client(port, stop, start, latencies, errors, k) for k in range(clients)))
    latencies.sort()
    n = len(latencies)
    return n / seconds, latencies[n // 2] * 1e3, latencies[min(n - 1, int(n * 0.99))] * 1e3, len(errors)


def serve(tree: Path, port: int, workers: int, heavy: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.Popen([sys.executable, "-m", "mantile.api", "--port", str(port), "--workers", str(workers),
                             "--heavy-concurrency", str(heavy), "--log-level", "warning"], cwd=tree, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                time.sleep(3 * workers)  # every worker imports and loads its catalog
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"server in {tree} exited: {proc.stderr.read().decode()[-2000:]}") from None
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"server in {tree} did not start")


def measure(tree: Path, args: argparse.Namespace) -> tuple[float, float, float, int]:
    port = free_port()
    proc = serve(tree, port, args.workers, args.heavy_concurrency)
    try:
        return asyncio.run(load(port, args.clients, args.seconds, args.warmup))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", default="HEAD~1", help="git ref to compare with ('none': this tree only)")
    ap.add_argument("--workers", type=int, default=2, help="server worker processes (default 2: one per core here)")
    ap.add_argument("--heavy-concurrency", type=int, default=1,
                    help="estimate processes per server worker (default 1: workers x this = the 2 cores)")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    args = ap.parse_args()
    trees = {"this tree": ROOT}
    tmp = None
    if args.ref != "none":
        tmp = tempfile.mkdtemp(prefix="mantile-http-ref-")
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", tmp, args.ref], check=True,
                       capture_output=True)
        trees = {args.ref: Path(tmp), **trees}
    try:
        results = {name: measure(tree, args) for name, tree in trees.items()}
    finally:
        if tmp:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", tmp], capture_output=True)
    print(f"machine: {os.cpu_count()} cores; {args.workers} server workers x {args.heavy_concurrency} estimate "
          f"processes, {args.clients} closed-loop clients, "
          f"{args.seconds:g} s; POST /config/system-metrics (llama_3.1_8b, 12 bodies)")
    names = list(results)
    print(f"{'figure':<22}" + "".join(f"{n:>14}" for n in names) + ("     ratio" if len(names) == 2 else ""))
    for i, fig in enumerate(("requests_per_s", "p50_ms", "p99_ms", "errors")):
        vals = [results[n][i] for n in names]
        ratio = f"{vals[1] / vals[0]:>10.2f}" if len(vals) == 2 and vals[0] else ""
        print(f"{fig:<22}" + "".join(f"{v:>14,.1f}" for v in vals) + ratio)


if __name__ == "__main__":
    main()
