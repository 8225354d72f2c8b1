"""Sweep speed and memory of this tree beside a previous commit's, measured in the same run.

    .venv/bin/python benchmarks/sweep_speed.py                 # this tree vs HEAD~1
    .venv/bin/python benchmarks/sweep_speed.py --ref main      # vs any git ref
    .venv/bin/python benchmarks/sweep_speed.py --ref none      # this tree only

The ref is checked out into a temporary git worktree and the same measurement (this file, run with
``--measure``) runs there with its own PYTHONPATH, alternately with this tree's, so both see the
same machine. Figures, each the best of ``--repeat``:

- ``mantile.sweep`` over a 1M-point grid (all cores), points/s;
- a pure-Python two-formula roofline loop over the same grid (compute time vs weight + KV read
  time, one ``max`` per point), points/s: the yardstick the vectorized engine must beat by 10x;
- ``mantile.estimate``, one point per call, microseconds per point, and ``mantile.estimate_many`` over the
  same points in one call (their four plans: four groups of 50 evaluated together);
- a streamed CLI sweep (``--big-points``, above the 2M points a run keeps in memory): points/s and
  peak RSS of the whole process tree (workers included), sampled by ``peak_rss.py``.

Prints a table; not a pass/fail test. Shared VMs are noisy: compare the ratio column, not runs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
MODEL, HARDWARE = "llama_3.3_70b", "nvidia_h100_80gb_x4"  # 32 H100s (4 nodes), with a price per hour
# 4 x 4 x 4 x 64 x 32 x 8 = 1,048,576 points: plans x batch ladder x prompt and output lengths
AXES_1M: dict[str, Any] = dict(
    tp=[1, 2, 4, 8], pp=[1, 2, 4, 8], dp=[1, 2, 4, 8], batch_size=list(range(1, 257, 4)),
    input_seq=[256 * i for i in range(1, 33)], output_seq=[64 * i for i in range(1, 9)])
# roofline yardstick: Llama 3.3 70B in bf16 on one H100 SXM (datasheet dense bf16 and HBM3 figures)
PARAMS, KV_BYTES_PER_TOKEN = 70.6e9, 2 * 80 * 8 * 128 * 2  # K and V x layers x kv heads x head dim x bf16
PEAK_FLOPS_PER_S, HBM_BYTES_PER_S, BYTES_PER_PARAM = 989e12, 3.35e12, 2


def best_of(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def roofline_loop(axes: dict[str, list[int]]) -> float:
    """Per point, in plain Python: prefill time (compute-bound) + decode steps (memory-bound)."""
    total = 0.0
    for tp, pp, dp, batch, prompt, out in itertools.product(*axes.values()):
        devices = tp * pp
        prefill_s = 2 * PARAMS * batch * prompt / (PEAK_FLOPS_PER_S * devices)
        read = PARAMS * BYTES_PER_PARAM + KV_BYTES_PER_TOKEN * batch * (prompt + out / 2)
        decode_s = out * max(2 * PARAMS * batch / PEAK_FLOPS_PER_S, read / HBM_BYTES_PER_S) / devices
        total += dp * batch * out / (prefill_s + decode_s)
    return total


def big_grid(points: int) -> tuple[list[str], int]:
    """CLI overrides of a grid of about ``points`` points (the batch ladder grows to reach it), and
    its exact size."""
    per_batch = 1
    for key, values in AXES_1M.items():
        per_batch *= len(values) if key != "batch_size" else 1
    batches = max(points // per_batch, 1)
    axes = {**AXES_1M, "batch_size": list(range(1, batches + 1))}
    return [f"{k}=[{','.join(map(str, v))}]" for k, v in axes.items()], batches * per_batch


def measure(repeat: int, big_points: int) -> dict[str, float]:
    """In a child whose PYTHONPATH is the tree under test: every figure, as JSON on stdout."""
    import mantile

    sys.path.insert(0, str(HERE.parent))
    from peak_rss import measure as peak_rss

    n = 1
    for values in AXES_1M.values():
        n *= len(values)
    out: dict[str, float] = {}
    mantile.sweep(MODEL, HARDWARE, **{k: v[:2] for k, v in AXES_1M.items()}, n_jobs=-1)  # warm the workers
    out["sweep_points_per_s"] = n / best_of(lambda: mantile.sweep(MODEL, HARDWARE, **AXES_1M, n_jobs=-1), repeat)
    out["roofline_loop_points_per_s"] = n / best_of(lambda: roofline_loop(AXES_1M), repeat)
    out["sweep_over_loop"] = out["sweep_points_per_s"] / out["roofline_loop_points_per_s"]
    calls = 200
    points = [dict(model=MODEL, hardware=HARDWARE, batch_size=1 + i % 256, input_seq=2048, output_seq=256,
                   tp=[1, 2, 4, 8][i % 4]) for i in range(calls)]
    out["estimate_us_per_point"] = 1e6 / calls * best_of(lambda: [mantile.estimate(**p) for p in points], repeat)
    if hasattr(mantile, "estimate_many"):  # the same points in one call (a tree before it has no figure)
        out["estimate_many_us_per_point"] = 1e6 / calls * best_of(lambda: mantile.estimate_many(points), repeat)
    if big_points:
        overrides, rows = big_grid(big_points)
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "mantile", f"model={MODEL}", f"hardware={HARDWARE}", *overrides,
                   "executor.progress=false", f"hydra.run.dir={tmp}/run"]
            p = peak_rss(cmd, quiet=True, cwd=tmp)
        out["big_sweep_points"] = rows
        out["big_sweep_points_per_s"] = rows / p.seconds if p.returncode == 0 else float("nan")
        out["big_sweep_peak_rss_tree_mb"] = p.tree_mb
    return out


def run_tree(tree: Path, repeat: int, big_points: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, str(HERE), "--measure", "--repeat", str(repeat), "--big-points", str(big_points)]
    done = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"measurement in {tree} failed:\n{done.stderr[-3000:]}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def worktree(ref: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix="mantile-bench-"))
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), ref], check=True,
                   capture_output=True)
    return path


def table(this: dict[str, float], base: dict[str, float] | None, ref: str) -> str:
    names = list(this)
    width = max(map(len, names))
    head = f"{'figure':<{width}}  {ref:>14}  {'this tree':>14}  {'ratio':>7}"
    lines = [head, "-" * len(head)]
    for name in names:
        b = (base or {}).get(name, float("nan"))
        ratio = this[name] / b if b == b and b else float("nan")
        lines.append(f"{name:<{width}}  {b:>14,.2f}  {this[name]:>14,.2f}  {ratio:>7.2f}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", default="HEAD~1", help="git ref to compare with ('none': this tree only)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--big-points", type=int, default=4_200_000, help="streamed CLI sweep size (0: skip)")
    ap.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.repeat, args.big_points)))
        return
    print(f"machine: {os.cpu_count()} cores; model {MODEL} on {HARDWARE}; best of {args.repeat}")
    base = None
    if args.ref != "none":
        tree = worktree(args.ref)
        try:
            base = run_tree(tree, args.repeat, args.big_points)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    this = run_tree(ROOT, args.repeat, args.big_points)
    print(table(this, base, args.ref if base else "-"))


if __name__ == "__main__":
    main()
