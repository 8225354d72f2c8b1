"""What keeps one run from losing another's results, and a failing disk from ending in a traceback.

- ``run_token``: a per-process suffix for the output directory (``${mantile_run_id:}`` in
  ``conf/config.yaml``), so two runs started in the same second write to different directories.
- ``output_lock``: an exclusive lock on the output directory for the length of a job; a second run
  pointed at the same directory (``hydra.run.dir=...``) stops with a clear message instead of
  overwriting the first one's files.
- ``fatal_message``: disk full, read-only or forbidden directories and out-of-memory become one
  line that says what to do.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omegaconf import OmegaConf

from mantile.specs import SpecError

LOCK_NAME = ".mantile.lock"
RUN_TOKEN = f"{os.getpid()}{secrets.token_hex(2)}"  # fixed for this process: every job of a sweep shares it


def register_resolvers() -> None:
    """``${mantile_run_id:}``: this process's run token (pid + 4 random hex digits)."""
    OmegaConf.register_new_resolver("mantile_run_id", lambda: RUN_TOKEN, replace=True, use_cache=True)


@contextmanager
def output_lock(out_dir: Path) -> Iterator[None]:
    """Hold ``out_dir/.mantile.lock`` (flock, released by the kernel when the process dies)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / LOCK_NAME, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            owner = f.read().strip() or "another process"
            raise SpecError("output", "hydra.run.dir", str(out_dir),
                            f"a directory no other run is writing (in use by mantile pid {owner}); wait for it "
                            "or choose another directory") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def require_writable(out_dir: Path) -> None:
    """Create ``out_dir`` and a probe file in it, before Hydra does; a disk that is full, read-only or
    forbidden ends the run here with one line and exit status 1 (not a traceback from Hydra)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".mantile-write-probe-{os.getpid()}"
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as e:
        print(f"mantile: error: {fatal_message(e) or e}", file=sys.stderr)
        sys.exit(1)


DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)


def fatal_message(exc: BaseException) -> str | None:
    """One line for a failure of the machine rather than of the input (None: not one of those)."""
    if isinstance(exc, MemoryError):
        return ("out of memory: make the grid smaller, lower executor.chunk_size or executor.n_jobs, "
                "or set executor.keep_in_memory=false")
    if isinstance(exc, OSError) and exc.errno in DISK_FULL:
        where = f" writing {exc.filename}" if exc.filename else ""
        return f"disk full{where} ({os.strerror(exc.errno)}); no partial file was left: free space or " \
               "choose another directory with hydra.run.dir=... / hydra.sweep.dir=..."
    if isinstance(exc, OSError) and exc.errno in NOT_WRITABLE:
        where = f" {exc.filename}" if exc.filename else ""
        return f"cannot write{where} ({os.strerror(exc.errno)}): choose a writable directory with " \
               "hydra.run.dir=... / hydra.sweep.dir=..."
    return None
