"""Peak memory of a command and every process it starts (workers included), sampled with psutil.

    .venv/bin/python benchmarks/peak_rss.py -- python -m mantile model=... tp='[1,2,4,8]' ...

Prints the wall time, the peak of the summed RSS of the process tree (an upper bound: pages shared
between processes, such as the Python libraries every worker maps, are counted once per process)
and the peak RSS of the largest single process. Not a pass/fail test.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import psutil

SAMPLE_S = 0.05  # sampling period; a peak shorter than this can be missed


@dataclass
class Peak:
    seconds: float = 0.0
    tree_mb: float = 0.0
    largest_mb: float = 0.0
    processes: int = 0
    returncode: int = 0


def _sample(root: psutil.Process, peak: Peak, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            procs = []
        rss = []
        for p in procs:
            try:
                rss.append(p.memory_info().rss / 2**20)
            except psutil.Error:
                pass
        if rss:
            peak.tree_mb = max(peak.tree_mb, sum(rss))
            peak.largest_mb = max(peak.largest_mb, max(rss))
            peak.processes = max(peak.processes, len(rss))
        time.sleep(SAMPLE_S)


def measure(cmd: list[str], quiet: bool = False, cwd: str | None = None, env: dict[str, str] | None = None
            ) -> Peak:
    """Run ``cmd`` to the end while sampling the RSS of its process tree."""
    out = subprocess.DEVNULL if quiet else None
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=out, stderr=out, cwd=cwd, env=env)
    peak, stop = Peak(), threading.Event()
    sampler = threading.Thread(target=_sample, args=(psutil.Process(proc.pid), peak, stop), daemon=True)
    sampler.start()
    peak.returncode = proc.wait()
    peak.seconds = time.perf_counter() - t0
    stop.set()
    sampler.join()
    return peak


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quiet", action="store_true", help="discard the command's output")
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="the command (after --)")
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("no command given")
    p = measure(cmd, args.quiet)
    print(f"exit {p.returncode}; {p.seconds:.1f} s; peak RSS: process tree {p.tree_mb:,.0f} MB "
          f"(up to {p.processes} processes), largest process {p.largest_mb:,.0f} MB")
    return p.returncode


if __name__ == "__main__":
    sys.exit(main())
