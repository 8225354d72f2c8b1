"""Check a run's Pareto front against brute force on a random sample of its rows.

    .venv/bin/python benchmarks/check_front.py outputs/2026-.../run-dir [--sample 1000000]

For a run written with the default Pareto settings (min tpot_ms, max throughput per device, one front
per model, hardware and workload, ``analysis.pareto.DEFAULT_BY``; fitting points only), by brute force
over ``--sample`` random fitting rows, within each workload: no sampled row dominates a front point, and
every sampled row is dominated by or equal to a front point. Prints the counts; exit status 1 when
either check fails.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mantile.analysis.pareto import DEFAULT_BY  # noqa: E402
from mantile.engine import dataset  # noqa: E402

LATENCY, THROUGHPUT = "tpot_ms", "throughput_tokens_per_s_per_device"
WORKLOAD = [c for c in DEFAULT_BY if c not in ("model_id", "hardware_id")]  # one front per workload


def sample(results: Path, n: int, seed: int = 0) -> pl.DataFrame:
    """``n`` random fitting rows (latency, throughput, workload), reading those columns of each part file."""
    files = dataset.parts(results) if results.is_dir() else [results]
    per_file = max(n // len(files), 1)
    rng = np.random.default_rng(seed)
    pieces = []
    for f in files:
        df = pl.read_parquet(f, columns=[LATENCY, THROUGHPUT, *WORKLOAD, "fits"]).filter(
            pl.col("fits") & pl.col(LATENCY).is_finite() & pl.col(THROUGHPUT).is_finite())
        if df.height:
            pieces.append(df[rng.choice(df.height, min(per_file, df.height), replace=False)])
    return pl.concat(pieces).drop("fits")


def check(front: pl.DataFrame, rows: pl.DataFrame) -> tuple[int, int]:
    """(front points dominated by a sampled row of their workload, sampled rows not covered by their
    workload's front)."""
    dominated = uncovered = 0
    fronts = {k: g for k, g in front.group_by(WORKLOAD)}
    for key, sampled in rows.group_by(WORKLOAD):
        g = fronts.get(key)
        sl, st = sampled[LATENCY].to_numpy(), sampled[THROUGHPUT].to_numpy()
        if g is None:  # no front point for this workload, yet fitting rows: every sampled row is uncovered
            uncovered += len(sl)
            continue
        fl, ft = g[LATENCY].to_numpy(), g[THROUGHPUT].to_numpy()
        dominated += sum(bool(np.any((sl <= a) & (st >= b) & ((sl < a) | (st > b))))
                         for a, b in zip(fl, ft, strict=True))
        covered = np.zeros(len(sl), dtype=bool)
        for a, b in zip(fl, ft, strict=True):
            covered |= (a <= sl) & (b >= st)
        uncovered += int((~covered).sum())
    return dominated, uncovered


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path, help="a run directory with results.parquet and pareto.parquet")
    ap.add_argument("--sample", type=int, default=1_000_000)
    args = ap.parse_args()
    front = pl.read_parquet(args.run_dir / "pareto.parquet")
    if front["model_id"].n_unique() > 1 or front["hardware_id"].n_unique() > 1:
        print("check_front: one model and one hardware per run only", file=sys.stderr)
        return 2
    rows = sample(args.run_dir / "results.parquet", args.sample)
    dominated, uncovered = check(front, rows)
    print(f"front {front.height:,} points; sample {rows.height:,} fitting rows; front points dominated by "
          f"a sampled row: {dominated}; sampled rows not dominated by or equal to a front point: {uncovered}")
    return 1 if dominated or uncovered else 0


if __name__ == "__main__":
    sys.exit(main())
