"""Sweep speed: points/s of each engine stage, a 1M-point sweep end to end, a 20M-point streamed
sweep's peak memory, and the engine against ``mantile.estimate`` called point by point.

    .venv/bin/python benchmarks/sweep_speed.py            # everything (about a minute on 2 cores)
    .venv/bin/python benchmarks/sweep_speed.py --quick    # skip the 20M-point run

Prints a table; not a pass/fail test. Timings are the best of ``--repeat`` runs (shared VMs are noisy).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import mantile  # noqa: E402
from mantile.costs import system  # noqa: E402
from mantile.engine import io  # noqa: E402
from mantile.engine.grid import GridIndex, block_columns, chunks  # noqa: E402
from mantile.analysis.pareto import pareto_front  # noqa: E402
from mantile.engine.runner import EngineSettings, run  # noqa: E402
from mantile.engine.spec import make_spec  # noqa: E402
from mantile.engine.table import BLOCK_POINTS, evaluate_chunk  # noqa: E402

MODEL, HARDWARE = "llama_3.3_70b", "nvidia_h100_80gb_x4"  # 32 H100s (4 nodes), with a price per hour
# 4 x 4 x 4 x 64 x 32 x 8 = 1,048,576 points: plans x batch ladder x prompt and output lengths
AXES_1M = dict(tp=[1, 2, 4, 8], pp=[1, 2, 4, 8], dp=[1, 2, 4, 8], batch_size=list(range(1, 257, 4)),
               input_seq=[256 * i for i in range(1, 33)], output_seq=[64 * i for i in range(1, 9)])
# 8 x 4 x 5 x 2 x 128 x 32 x 8 x 2 = 20,971,520 points (tp 3 and 6 do not divide the heads: invalid rows)
AXES_20M = dict(tp=[1, 2, 4, 8, 16, 32, 3, 6], pp=[1, 2, 4, 8], dp=[1, 2, 4, 8, 16], cp=[1, 2],
                batch_size=list(range(1, 257, 2)), input_seq=[256 * i for i in range(1, 33)],
                output_seq=[64 * i for i in range(1, 9)], dtype=["bf16", "fp8"])


def best_of(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _evaluate_range(spec: object, start: int, stop: int) -> int:
    """Cost model only (no table) on points start..stop-1, in cache-sized blocks."""
    model, sys_ = next(iter(spec.models.values())), next(iter(spec.systems.values()))  # type: ignore[attr-defined]
    index = GridIndex.of(spec.axes, start, stop)  # type: ignore[attr-defined]
    with np.errstate(all="ignore"):
        for lo, hi in chunks(index.n_points, BLOCK_POINTS):
            cols = block_columns(index, lo, hi)
            system.evaluate(model, sys_.spec, sys_.eff, spec.stack, cols, spec.options)  # type: ignore[attr-defined]
    return stop - start


def stages(repeat: int) -> tuple[dict[str, float], float]:
    from joblib import Parallel, delayed

    spec = make_spec(MODEL, HARDWARE, AXES_1M)
    n = spec.n_points
    (model_id, model), sys_ = next(iter(spec.models.items())), next(iter(spec.systems.values()))
    rates: dict[str, float] = {}
    rates["grid (axes of every point, 16k blocks)"] = n / best_of(
        lambda: [block_columns(GridIndex.of(spec.axes, a, b), 0, b - a) for a, b in chunks(n, BLOCK_POINTS)],
        repeat)
    rates["evaluation, 1 core (cost model only)"] = n / best_of(lambda: _evaluate_range(spec, 0, n), repeat)
    with Parallel(n_jobs=2) as par:
        par(delayed(_evaluate_range)(spec, 0, 1000) for _ in range(2))  # start the workers
        rates["evaluation, 2 workers (cost model only)"] = n / best_of(
            lambda: par(delayed(_evaluate_range)(spec, a, b) for a, b in chunks(n, 1 << 17)), repeat)
    with np.errstate(all="ignore"):
        df = evaluate_chunk(model_id, model, sys_, spec, 0, n)
        rates["evaluation + results table, 1 core"] = n / best_of(
            lambda: evaluate_chunk(model_id, model, sys_, spec, 0, n), 1)
    with tempfile.TemporaryDirectory() as tmp:
        rates["Parquet writing, 1 thread (zstd)"] = n / best_of(
            lambda: io.write_parquet(df, Path(tmp) / "r.parquet"), repeat)
    rates["Pareto front (2-D, whole table)"] = n / best_of(lambda: pareto_front(df), repeat)
    rates["Pareto front (3-D, + cost)"] = n / best_of(
        lambda: pareto_front(df, cost="cost_usd_per_million_tokens"), 1)
    with tempfile.TemporaryDirectory() as tmp:
        run(spec, EngineSettings(n_jobs=-1, progress=False), Path(tmp) / "r.parquet")  # start the workers
        settings = EngineSettings(n_jobs=-1, progress=False)
        engine_s = best_of(lambda: run(spec, settings, Path(tmp) / "r.parquet"), repeat)
    rates["engine run(): evaluate + table + Parquet + Pareto, 2 workers"] = n / engine_s
    return rates, engine_s / n


def cli_seconds(repeat: int) -> float:
    """``python -m mantile`` on the 1M grid: start, evaluate, write, Pareto, summary, exit."""
    lists = {k: "[" + ",".join(map(str, v)) + "]" for k, v in AXES_1M.items()}
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "mantile", f"model={MODEL}", f"hardware={HARDWARE}",
               "engine.progress=false", f"hydra.run.dir={tmp}/run", *[f"{k}={v}" for k, v in lists.items()]]
        return best_of(lambda: subprocess.run(cmd, check=True, capture_output=True, cwd=tmp), repeat)


def estimate_seconds_per_point(points: int = 200) -> float:
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(points):
        mantile.estimate(MODEL, HARDWARE, batch_size=int(rng.integers(1, 256)), input_seq=2048,
                         output_seq=256, tp=int(rng.choice([1, 2, 4, 8])))
    return (time.perf_counter() - t0) / points


def _peak_rss_mb() -> float:
    """VmHWM of this process (peak RSS since exec; getrusage's ru_maxrss would include the RSS this
    process had as a fork of the benchmark, before exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def streamed_run_child(out: str) -> None:
    """In a child process: the 20M-point sweep, table not kept (streamed), peak RSS of this process."""
    spec = make_spec(MODEL, HARDWARE, AXES_20M)
    t0 = time.perf_counter()
    res = run(spec, EngineSettings(n_jobs=-1, progress=False), Path(out) / "results.parquet")
    seconds = time.perf_counter() - t0
    rss_mb = _peak_rss_mb()
    size_mb = os.path.getsize(res.path) / 1e6
    print(f"{res.n_points} {seconds:.3f} {rss_mb:.1f} {res.results is None} {size_mb:.1f}")


def streamed_run() -> dict[str, float]:
    import psutil

    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen([sys.executable, __file__, "--child", tmp], stdout=subprocess.PIPE, text=True)
        peak_tree_mb, stop = 0.0, threading.Event()

        def sample() -> None:
            nonlocal peak_tree_mb
            parent = psutil.Process(proc.pid)
            while not stop.is_set():
                try:
                    procs = [parent, *parent.children(recursive=True)]
                    rss = sum(p.memory_info().rss for p in procs if p.is_running())
                    peak_tree_mb = max(peak_tree_mb, rss / 2**20)
                except psutil.Error:
                    pass
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out, _ = proc.communicate()
        stop.set()
        sampler.join()
    n, seconds, rss_mb, streamed, size_mb = out.split()
    return {"points": float(n), "seconds": float(seconds), "peak_rss_main_mb": float(rss_mb),
            "peak_rss_tree_mb": peak_tree_mb, "streamed": float(streamed == "True"),
            "file_mb": float(size_mb)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip the 20M-point streamed run")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        streamed_run_child(args.child)
        return
    n = make_spec(MODEL, HARDWARE, AXES_1M).n_points
    print(f"machine: {os.cpu_count()} cores; model {MODEL} on {HARDWARE}; {n:,}-point grid")
    rates, engine_s_per_point = stages(args.repeat)
    width = max(map(len, rates))
    print(f"\n{'stage':<{width}}  points/s")
    for name, rate in rates.items():
        print(f"{name:<{width}}  {rate:>12,.0f}")
    cli = cli_seconds(min(args.repeat, 2))
    print(f"\n1M-point sweep end to end (python -m mantile: start, evaluate, Parquet, Pareto, summary): "
          f"{cli:.2f} s")
    per_point = estimate_seconds_per_point()
    print(f"mantile.estimate(), one point per call: {per_point * 1e6:,.0f} us/point; engine: "
          f"{engine_s_per_point * 1e6:.2f} us/point; ratio {per_point / engine_s_per_point:,.0f}x")
    if not args.quick:
        s = streamed_run()
        print(f"\n{s['points']:,.0f}-point streamed sweep (table not kept: {bool(s['streamed'])}): "
              f"{s['seconds']:.1f} s ({s['points'] / s['seconds']:,.0f} points/s), "
              f"Parquet {s['file_mb']:.0f} MB; "
              f"peak RSS: main process {s['peak_rss_main_mb']:,.0f} MB, "
              f"main + workers {s['peak_rss_tree_mb']:,.0f} MB")


if __name__ == "__main__":
    main()
