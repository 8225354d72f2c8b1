"""``python -m mantile.summarize DIR``: merge a multirun's results, write and print the Pareto front.

Idempotent: reads every ``results.parquet`` below DIR (not DIR's own merged file), de-duplicates
rows by their identity columns (a re-run job replaces its rows), and rewrites DIR/results.parquet and
DIR/pareto.parquet atomically.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from mantile.engine import io, summary
from mantile.engine.pareto import pareto_front
from mantile.engine.table import IDENTITY

LATENCIES = ("tpot_ms", "ttft_ms", "e2e_latency_ms")


def job_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("results.parquet") if p.parent != root and not p.name.startswith("."))


def merge(root: Path) -> pl.DataFrame:
    files = job_files(root)
    if not files:
        raise FileNotFoundError(f"no results.parquet below {root}")
    df = pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")
    keys = [c for c in IDENTITY if c in df.columns]
    return df.unique(subset=keys, keep="last", maintain_order=True)


def summarize(root: Path, pareto_cfg: Mapping[str, Any] | None = None, plot: bool = False,
              quiet: bool = False) -> pl.DataFrame:
    root = Path(root)
    p = dict(pareto_cfg or {})
    latency = p.get("latency", "tpot_ms")
    throughput = p.get("throughput", "throughput_tokens_per_s_per_device")
    by = tuple(p.get("by", ("model_id", "hardware_id")))
    df = merge(root)
    front = pareto_front(df, latency, throughput, by)
    io.write_parquet(df, root / "results.parquet")
    io.write_parquet(front, root / "pareto.parquet")
    if not quiet:
        print(f"merged {len(job_files(root))} job(s), {df.height:,} rows -> {root / 'results.parquet'}")
        print(summary.pareto_text(front, latency, throughput))
        text = summary.invalid_text(df)
        if text:
            print(text)
        print(f"pareto: {root / 'pareto.parquet'}")
    return front


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mantile.summarize", description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path, help="a multirun directory (outputs/multirun/<time>)")
    ap.add_argument("--latency", default="tpot_ms", choices=LATENCIES, help="latency objective (minimized)")
    ap.add_argument("--throughput", default="throughput_tokens_per_s_per_device", help="throughput objective")
    args = ap.parse_args(argv)
    if not args.dir.is_dir():
        print(f"mantile.summarize: error: {args.dir} is not a directory", file=sys.stderr)
        return 2
    try:
        summarize(args.dir, {"latency": args.latency, "throughput": args.throughput})
    except FileNotFoundError as e:
        print(f"mantile.summarize: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
