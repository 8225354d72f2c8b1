"""Evaluate a SweepSpec: chunks of the grid through joblib workers, streamed into Parquet.

Chunks are evaluated in order (joblib ``return_as='generator'``), appended to a temp Parquet file and
folded into a running Pareto front, so memory stays at a few chunks whatever the sweep size. A sweep
that is interrupted (Ctrl-C, a worker killed) deletes its temp file and reports how many points were
done; the previous ``results.parquet`` (if any) is untouched.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from joblib import Parallel, delayed
from tqdm import tqdm

from mantile.engine import io
from mantile.engine.grid import chunks, shape
from mantile.engine.pareto import pareto_front
from mantile.engine.spec import SweepSpec
from mantile.engine.table import evaluate_chunk

BACKENDS = ("loky", "threading", "multiprocessing", "sequential", "dask", "ray")


@dataclass(frozen=True)
class EngineSettings:
    """``conf/engine/*.yaml``: how to run (never what to compute)."""

    n_jobs: int = 1
    backend: str = "loky"
    chunk_size: int = 250_000
    progress: bool = True
    address: str | None = None  # dask scheduler address for backend=dask
    keep_in_memory: bool = True  # return the whole table (off for huge sweeps)

    def __post_init__(self) -> None:
        from mantile.specs import SpecError

        if self.backend not in BACKENDS:
            raise SpecError("engine", "backend", self.backend, BACKENDS)
        if self.chunk_size < 1:
            raise SpecError("engine", "chunk_size", self.chunk_size, "a positive integer")


@dataclass(frozen=True)
class ParetoSettings:
    latency: str = "tpot_ms"
    throughput: str = "throughput_tokens_per_s_per_device"
    by: tuple[str, ...] = ("model_id", "hardware_id")
    cost: str | None = None


@dataclass
class RunResult:
    n_points: int
    seconds: float
    results: pl.DataFrame | None
    pareto: pl.DataFrame
    path: Path | None = None
    counts: dict[str, int] = field(default_factory=dict)


class SweepInterrupted(RuntimeError):
    def __init__(self, done: int, total: int) -> None:
        super().__init__(f"sweep interrupted after {done:,} of {total:,} points; no partial file was written")
        self.done, self.total = done, total


def _tasks(spec: SweepSpec, chunk_size: int) -> Iterator[tuple[Any, ...]]:
    per = 1
    for n in shape(spec.axes):
        per *= n
    for model_id, model in spec.models.items():
        for sys_ in spec.systems.values():
            for start, stop in chunks(per, chunk_size):
                yield model_id, model, sys_, spec, start, stop


def _parallel(settings: EngineSettings, n_tasks: int) -> Parallel | None:
    if settings.n_jobs == 1 or settings.backend == "sequential" or n_tasks == 1:
        return None
    if settings.backend == "dask":
        from dask.distributed import Client  # noqa: F401  (registers joblib's dask backend)

        from mantile.engine.cluster import dask_client
        dask_client(settings.address)
    if settings.backend == "ray":
        from ray.util.joblib import register_ray

        register_ray()
    return Parallel(n_jobs=settings.n_jobs, backend=settings.backend, return_as="generator")


def run(spec: SweepSpec, settings: EngineSettings = EngineSettings(), out_path: Path | None = None,
        config_yaml: str = "", pareto: ParetoSettings = ParetoSettings()) -> RunResult:
    """Evaluate every point; write ``out_path`` (atomically) if given; return table + Pareto front."""
    t0 = time.perf_counter()
    total = spec.n_points
    tasks = list(_tasks(spec, settings.chunk_size))
    par = _parallel(settings, len(tasks))
    stream = (evaluate_chunk(*t) for t in tasks) if par is None else par(delayed(evaluate_chunk)(*t) for t in tasks)
    writer = io.AtomicParquetWriter(out_path, io.metadata(config_yaml)) if out_path else None
    kept: list[pl.DataFrame] = []
    front: pl.DataFrame | None = None
    counts = {"points": 0, "valid": 0, "fits": 0}
    bar = tqdm(total=total, unit="pt", unit_scale=True, file=sys.stderr, delay=1.0,
               disable=not settings.progress, desc="mantile")
    try:
        for df in stream:
            if writer:
                writer.write(df)
            if settings.keep_in_memory:
                kept.append(df)
            chunk_front = pareto_front(df, pareto.latency, pareto.throughput, pareto.by, pareto.cost)
            both = chunk_front if front is None else pl.concat([front, chunk_front])
            front = pareto_front(both, pareto.latency, pareto.throughput, pareto.by, pareto.cost)
            counts["points"] += df.height
            counts["valid"] += int(df["valid"].sum())
            counts["fits"] += int(df["fits"].sum())
            bar.update(df.height)
    except BaseException as exc:
        if writer:
            writer.abort()
        bar.close()
        if isinstance(exc, (KeyboardInterrupt, SystemExit)) or "Terminated" in type(exc).__name__:
            raise SweepInterrupted(counts["points"], total) from exc
        raise
    bar.close()
    results = pl.concat(kept) if kept else None
    if writer:
        writer.commit()
    assert front is not None
    return RunResult(total, time.perf_counter() - t0, results, front, out_path, counts)
