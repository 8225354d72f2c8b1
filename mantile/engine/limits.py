"""How big a sweep's output will be and how long it will take, before it starts.

``estimate_output`` is the one place the CLI, the Python API and the runner size a sweep; the
runner refuses a sweep whose Parquet output would not fit on the disk it writes to
(``check_disk``), with the estimate in the message, instead of failing hours later on a full disk.

The per-row figures were measured on the 100M-point CLI sweep of ``docs/scale.md`` (llama_3.3_70b on
nvidia_h100_80gb_x4, stop 27): 8,394,264,808 bytes of zstd Parquet for 100,663,296 rows of 83 columns,
83.4 bytes a row (55 when the table had 52 columns: the floors, bands and serving columns added since
made the old figure a guard that passed sweeps it should have refused), and 536,000 points/s on 2
workers, 268,000 per worker, on a quiet day of this 2-core VM (46,000 per worker on a day its load
average was about 12). A different model or cost model moves them by tens of percent; the estimate is
a guard and an ETA, not a promise.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NamedTuple

from mantile.engine.spec import SweepSpec
from mantile.specs import SpecError

PARQUET_BYTES_PER_ROW = 84  # zstd, 83 columns (measured, see the module docstring)
POINTS_PER_S_PER_WORKER = 268_000  # evaluate + results table + Parquet part, one core (measured, quiet day)
DISK_HEADROOM = 1.2  # the estimate times this must fit (per-chunk overheads, a model with more layers)


class OutputEstimate(NamedTuple):
    """``rows, bytes, seconds = estimate_output(spec)``."""

    rows: int
    bytes: int
    seconds: float

    def describe(self) -> str:
        return f"{self.rows:,} rows, ~{_size(self.bytes)} of Parquet, ~{_duration(self.seconds)}"


def workers_of(n_jobs: int) -> int:
    """The worker count ``n_jobs`` stands for (-1: every core of this machine)."""
    return max(os.cpu_count() or 1, 1) if n_jobs < 0 else max(n_jobs, 1)


def estimate_output(spec: SweepSpec, n_jobs: int = 1) -> OutputEstimate:
    """Rows, Parquet bytes and seconds of ``spec`` on ``n_jobs`` local workers (-1: all cores)."""
    rows = spec.n_points
    return OutputEstimate(rows, rows * PARQUET_BYTES_PER_ROW, rows / (POINTS_PER_S_PER_WORKER * workers_of(n_jobs)))


def free_bytes(path: Path) -> int:
    """Free space on the file system that ``path`` (existing or not yet) would be written to."""
    here = Path(path).resolve()
    while not here.exists() and here != here.parent:
        here = here.parent
    return shutil.disk_usage(here).free


def check_disk(spec: SweepSpec, path: Path, n_jobs: int = 1) -> OutputEstimate:
    """The estimate of ``spec``; a SpecError (nothing written) when its output would not fit on the
    disk of ``path``. A file being replaced counts as free space (it is deleted at the end)."""
    est = estimate_output(spec, n_jobs)
    free = free_bytes(path) + _size_on_disk(Path(path))
    if est.bytes * DISK_HEADROOM > free:
        raise SpecError("sweep", "output", est.describe(),
                        f"needs ~{_size(int(est.bytes * DISK_HEADROOM))} free but {Path(path).parent} has "
                        f"{_size(free)}: sweep fewer points, or write elsewhere (hydra.run.dir=...)")
    return est


def _size_on_disk(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return 0


def _size(n_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n_bytes < 1000 or unit == "TB":
            return f"{n_bytes:,.0f} {unit}" if unit == "B" else f"{n_bytes:,.1f} {unit}"
        n_bytes /= 1000
    raise AssertionError


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
