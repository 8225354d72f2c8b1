"""Before a big grid starts: how much disk and time it will take, and a refusal if it cannot fit.

The estimate evaluates a small sample of the grid (``SAMPLE_POINTS`` points of the first model and
system), writes it to Parquet in memory the way ``engine.io`` does, and scales: bytes per row x points
for the file, seconds per point x points / workers for the time. A grid whose file would not fit in
the free space of the output directory's disk stops before any work, naming both numbers.
"""

from __future__ import annotations

import io as _io
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from mantile.engine.spec import SweepSpec
from mantile.engine.table import evaluate_chunk
from mantile.specs import SpecError

NOTICE_POINTS = 5_000_000  # grids from this size on get a size and time estimate before they start
SAMPLE_POINTS = 4096


@dataclass(frozen=True)
class GridBudget:
    points: int
    bytes_per_row: float
    seconds_per_point: float
    workers: int

    @property
    def output_bytes(self) -> float:
        return self.bytes_per_row * self.points

    @property
    def seconds(self) -> float:
        return self.seconds_per_point * self.points / self.workers


def _size(n_bytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if n_bytes < 1000 or unit == "PB":
            return f"{n_bytes:,.1f} {unit}"
        n_bytes /= 1000
    raise AssertionError


def _duration(seconds: float) -> str:
    return f"{seconds:,.0f} s" if seconds < 3600 else f"{seconds / 3600:,.1f} h"


def measure(spec: SweepSpec, n_jobs: int) -> GridBudget:
    """Bytes per Parquet row and seconds per point, from a sample of the grid."""
    model_id, model = next(iter(spec.models.items()))
    system = next(iter(spec.systems.values()))
    per_pair = spec.n_points // (len(spec.models) * len(spec.systems))
    n = min(SAMPLE_POINTS, per_pair)
    t0 = time.perf_counter()
    df = evaluate_chunk(model_id, model, system, spec, 0, n)
    seconds = time.perf_counter() - t0
    buf = _io.BytesIO()
    pq.write_table(df.to_arrow(), buf, compression="zstd")
    workers = n_jobs if n_jobs > 0 else max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    return GridBudget(spec.n_points, buf.tell() / n, seconds / n, workers)


def free_bytes(out_dir: Path) -> int:
    """Free space on the disk that holds ``out_dir`` (or its nearest existing parent)."""
    path = Path(out_dir).resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def check_grid(spec: SweepSpec, n_jobs: int, out_dir: Path) -> GridBudget | None:
    """Print an estimate for a grid of ``NOTICE_POINTS`` or more; refuse one whose file cannot fit."""
    if spec.n_points < NOTICE_POINTS:
        return None
    budget = measure(spec, n_jobs)
    free = free_bytes(out_dir)
    print(f"mantile: grid of {budget.points:,} points: about {_size(budget.output_bytes)} of Parquet and "
          f"{_duration(budget.seconds)} on {budget.workers} worker(s) (from a {SAMPLE_POINTS}-point sample); "
          f"{_size(free)} free in {out_dir}", file=sys.stderr)
    if budget.output_bytes > free:
        raise SpecError("sweep", "grid", f"{budget.points:,} points",
                        f"an output that fits on the disk: about {_size(budget.output_bytes)} needed, "
                        f"{_size(free)} free in {out_dir}; sweep fewer values or choose another hydra.run.dir")
    return budget
