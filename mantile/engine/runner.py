"""Evaluate a SweepSpec: chunks of the grid through joblib workers, streamed into Parquet.

A worker evaluates one chunk (``chunk_size`` points, in cache-sized blocks) and builds its results
table and its Pareto front. Up to ``KEEP_IN_MEMORY_MAX_POINTS`` points the tables come back to the
parent (as Arrow tables, or Arrow files in shared memory), which keeps them and hands them to a
background writer of one ``results.parquet`` file. Above it (or with ``keep_in_memory=false``) each
worker writes its chunk itself as one part file of a hive-partitioned dataset
(``results.parquet/model_id=.../hardware_id=.../part-N.parquet``, see ``engine/dataset.py``) and sends
back only its Pareto front and counts: the parent's memory and work stay those of a few fronts
whatever the sweep size, and writing scales with the workers. Fronts are folded as they arrive (a
front of fronts is the front). Chunks are dispatched in windows of a few per worker, so at most a
window of chunks is in flight.

A sweep that is interrupted (Ctrl-C, SIGTERM, a worker killed) deletes its temp file and reports how
many points were done; the previous ``results.parquet`` (if any) is untouched.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
from joblib import Parallel, delayed, parallel_config
from tqdm import tqdm

from mantile.analysis.pareto import pareto_front
from mantile.engine import dataset, io, limits
from mantile.engine.cluster import BACKENDS, LOCAL_BACKENDS, backend_context
from mantile.engine.grid import chunks, shape
from mantile.engine.spec import SweepSpec, System
from mantile.engine.table import evaluate_chunk
from mantile.specs import ModelSpec

KEEP_IN_MEMORY_MAX_POINTS = 2_000_000  # keep_in_memory=null keeps the table up to this many points
WINDOW_TASKS_PER_WORKER = 8  # chunks dispatched ahead per worker before the parent catches up
MIN_TASKS_FOR_WORKERS = 4  # fewer chunks than this run in-process even with n_jobs > 1
FRONTS_BEFORE_MERGE = 32  # chunk fronts collected before they are folded into one
#: ... or fewer, once those not yet folded hold this many bytes (or as many as the folded front, whichever is
#: more: the folds' work stays proportional to what they keep). A chunk's per-workload front can be 20 MB
#: (65,536 points of 32 x 32 workloads), so 32 of them held 600-700 MB in the driver of a 25M-point CLI sweep.
FRONT_BYTES_BEFORE_MERGE = 64 << 20
SHARED_MEMORY_DIR = "/dev/shm"  # worker results are spilled here as Arrow files (Linux tmpfs)
SPILL_MIN_FREE_BYTES = 4 << 30  # ... when it has room for a few windows of chunks
WORKER_DEATHS = ("TerminatedWorkerError", "BrokenProcessPool", "KilledWorker")
PARENT_CHECK_S = 0.5  # how often a local worker checks that the sweep's process still lives


@dataclass(frozen=True)
class EngineSettings:
    """``conf/executor/*.yaml``: how to run (never what to compute)."""

    n_jobs: int = 1
    backend: str = "loky"
    chunk_size: int = 65_536
    progress: bool = True
    address: str | None = None  # dask scheduler address / ray address (None: start a local one)
    keep_in_memory: bool | None = None  # None: keep the whole table up to KEEP_IN_MEMORY_MAX_POINTS

    def __post_init__(self) -> None:
        from mantile.specs import SpecError

        if self.backend not in BACKENDS:
            raise SpecError("executor", "backend", self.backend, BACKENDS)
        if self.chunk_size < 1:
            raise SpecError("executor", "chunk_size", self.chunk_size, "a positive integer")
        if self.n_jobs == 0:
            raise SpecError("executor", "n_jobs", self.n_jobs, "a positive integer, or -1 for all cores")

    def keep(self, n_points: int, writes_file: bool) -> bool:
        if not writes_file:
            return True
        return n_points <= KEEP_IN_MEMORY_MAX_POINTS if self.keep_in_memory is None else self.keep_in_memory


@dataclass(frozen=True)
class ParetoSettings:
    latency: str = "tpot_ms"
    throughput: str = "throughput_tokens_per_s_per_device"
    by: tuple[str, ...] = ("model_id", "hardware_id")
    cost: str | None = None

    def front(self, df: pl.DataFrame) -> pl.DataFrame:
        return pareto_front(df, self.latency, self.throughput, self.by, self.cost)

    def fold(self, tables: Iterable[pl.DataFrame]) -> pl.DataFrame:
        """The front of a table given in pieces (bounded memory whatever the table's size)."""
        folder = FrontFolder(self)
        for table in tables:
            folder.add(self.front(table).to_arrow())
        return folder.front()


@dataclass
class FrontFolder:
    """Fronts of pieces folded into one: a front of fronts is the front of the whole. Folded every
    ``FRONTS_BEFORE_MERGE`` pieces, or sooner when the pieces not yet folded hold
    ``FRONT_BYTES_BEFORE_MERGE`` bytes and more than the folded front, so memory holds a few fronts, not
    the table."""

    pareto: ParetoSettings
    fronts: list[pa.Table] = field(default_factory=list)
    folded_bytes: int = 0  # the folded front's (the first of ``fronts`` after a fold)
    pending_bytes: int = 0  # the fronts added since

    def add(self, front: pa.Table) -> None:
        self.fronts.append(front)
        self.pending_bytes += front.nbytes
        if len(self.fronts) >= FRONTS_BEFORE_MERGE or \
                self.pending_bytes >= max(FRONT_BYTES_BEFORE_MERGE, self.folded_bytes):
            folded = self.front().to_arrow()
            self.fronts, self.folded_bytes, self.pending_bytes = [folded], folded.nbytes, 0

    def front(self) -> pl.DataFrame:
        if not self.fronts:
            return pl.DataFrame()
        # the pieces as they came (no rechunk: ``pareto_front`` reads a few columns and gathers the kept rows)
        df = pl.from_arrow(pa.concat_tables(self.fronts), rechunk=False)
        assert isinstance(df, pl.DataFrame)
        return self.pareto.front(df)


@dataclass
class ChunkResult:
    """What a worker sends back for one chunk: its rows (or the Arrow file in shared memory that
    holds them), their Pareto front, and counts."""

    table: pa.Table | str | None  # None: the worker wrote the rows to a part file
    front: pa.Table
    points: int
    valid: int
    fits: int

    def load(self) -> ChunkResult:
        """Map a spilled table (zero-copy) and unlink its file; the mapping keeps the pages alive."""
        if isinstance(self.table, str):
            path, self.table = self.table, pa.ipc.open_file(pa.memory_map(self.table)).read_all()
            os.unlink(path)
        return self


_watched_parent: int | None = None


def exit_with_parent(parent_pid: int, spill_dir: str | None = None) -> None:
    """In a worker process (sweep chunks, the HTTP API's estimate pool): exit, removing ``spill_dir``,
    within a second of the parent's death, even a ``kill -9``, instead of lingering with its pipes and
    shared memory. Idempotent per process."""
    global _watched_parent
    if _watched_parent == parent_pid or parent_pid == os.getpid():
        return
    _watched_parent = parent_pid

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_CHECK_S)
        if spill_dir:
            shutil.rmtree(spill_dir, ignore_errors=True)
        os._exit(1)

    threading.Thread(target=watch, name="mantile-parent-watch", daemon=True).start()


def run_chunk(model_id: str, model: ModelSpec, sys_: System, spec: SweepSpec, start: int, stop: int,
              pareto: ParetoSettings, part: Path | None = None, meta: dict[bytes, bytes] | None = None,
              spill_dir: str | None = None, parent_pid: int | None = None) -> ChunkResult:
    """Evaluate one chunk. With ``part`` the rows are written there (a dataset's part file) and only
    the front and counts come back; else with ``spill_dir`` (shared memory of this machine) they go
    to an Arrow file there instead of through the result pipe: a memcpy instead of pickling.
    ``parent_pid``: a local worker watches it and exits when it dies."""
    if parent_pid is not None:
        exit_with_parent(parent_pid, spill_dir)
    df = evaluate_chunk(model_id, model, sys_, spec, start, stop)
    arrow = df.to_arrow()
    table: pa.Table | str | None = arrow
    if part is not None:
        dataset.write_part(arrow, part, meta or {})
        table = None
    elif spill_dir is not None:
        path = os.path.join(spill_dir, f"{start}-{stop}-{uuid.uuid4().hex}.arrow")
        with pa.OSFile(path, "wb") as f, pa.ipc.new_file(f, arrow.schema) as w:
            w.write_table(arrow)
        table = path
    front = pareto.front(df).to_arrow()
    return ChunkResult(table, front, df.height, int(df["valid"].sum()), int(df["fits"].sum()))


@dataclass
class RunResult:
    n_points: int
    seconds: float
    results: pl.DataFrame | None
    pareto: pl.DataFrame
    path: Path | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def lazy(self) -> pl.LazyFrame:
        """The whole table: in memory, or scanned from the Parquet file or dataset when it was not kept
        (collect big ones with ``engine="streaming"`` to keep memory bounded)."""
        if self.results is not None:
            return self.results.lazy()
        assert self.path is not None, "a run without a file keeps its table in memory"
        return dataset.scan(self.path) if self.path.is_dir() else pl.scan_parquet(self.path)


class SweepInterrupted(RuntimeError):
    """A sweep stopped before the end; nothing it would have written exists. ``exit_code`` follows the
    shell's convention: 130 for Ctrl-C, 143 for SIGTERM, 1 for a dead worker."""

    def __init__(self, done: int, total: int, cause: str = "interrupted (Ctrl-C)",
                 exit_code: int = 130) -> None:
        super().__init__(f"sweep {cause} after {done:,} of {total:,} points; no partial file was written")
        self.done, self.total, self.cause, self.exit_code = done, total, cause, exit_code


def _tasks(spec: SweepSpec, chunk_size: int, pareto: ParetoSettings, out: dataset.DatasetWriter | None = None,
           meta: dict[bytes, bytes] | None = None) -> list[tuple[Any, ...]]:
    """One task per chunk; with ``out`` each names the part file its worker writes."""
    per = 1
    for n in shape(spec.axes):
        per *= n
    pairs = [(model_id, model, sys_) for model_id, model in spec.models.items() for sys_ in spec.systems.values()]
    tasks = [(model_id, model, sys_, spec, start, stop, pareto)
             for model_id, model, sys_ in pairs for start, stop in chunks(per, chunk_size)]
    return [(*t, out.part(t[0], t[2].hardware_id, i) if out else None, meta) for i, t in enumerate(tasks)]


def _in_process(settings: EngineSettings, n_tasks: int) -> bool:
    """Small sweeps run here: starting local workers (about 0.5 s) costs more than it saves."""
    if settings.backend == "sequential" or n_tasks == 1:
        return True
    return settings.backend in LOCAL_BACKENDS and (settings.n_jobs == 1 or n_tasks < MIN_TASKS_FOR_WORKERS)


@contextmanager
def _spill_dir(backend: str, wanted: bool = True) -> Iterator[str | None]:
    """A temp dir in shared memory for worker processes on this machine (None: send results in-band)."""
    shm = Path(SHARED_MEMORY_DIR)
    if not wanted or backend not in ("loky", "multiprocessing") or not shm.is_dir() or \
            shutil.disk_usage(shm).free < SPILL_MIN_FREE_BYTES:
        yield None
        return
    for stale in shm.glob("mantile-*-*"):  # left by a sweep killed with SIGKILL
        pid = stale.name.split("-")[1]
        if pid.isdigit() and not io.pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    path = tempfile.mkdtemp(prefix=f"mantile-{os.getpid()}-", dir=shm)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _stream(settings: EngineSettings, tasks: Sequence[tuple[Any, ...]], spill: bool = True
            ) -> Generator[ChunkResult, None, None]:
    """Chunk results in task order, evaluated here or by joblib workers, a window at a time; ``spill``:
    send tables back through shared memory (pointless when the workers write them)."""
    if _in_process(settings, len(tasks)):
        yield from (run_chunk(*t) for t in tasks)
        return
    # parallel_config, not Parallel(backend=...): joblib's dask backend breaks when built by name there
    with backend_context(settings.backend, settings.address, settings.n_jobs), \
            _spill_dir(settings.backend, spill) as spill_dir, \
            parallel_config(backend=settings.backend, **_arm_workers(settings.backend, spill_dir)), \
            Parallel(n_jobs=settings.n_jobs, return_as="generator") as par:
        try:
            workers = max(int(par._effective_n_jobs()), 1)
        except Exception:  # noqa: BLE001 - private joblib API; a guess is enough for the window size
            workers = 2
        window = WINDOW_TASKS_PER_WORKER * workers
        for lo in range(0, len(tasks), window):
            parent = os.getpid() if settings.backend in LOCAL_BACKENDS else None
            yield from (r.load() for r in par(delayed(run_chunk)(*t, spill_dir, parent) for t in tasks[lo:lo + window]))


def _arm_workers(backend: str, spill_dir: str | None) -> dict[str, Any]:
    """loky workers watch this process from the moment they start (not only from their first chunk):
    a sweep killed before its first task reaches them leaves none idle for loky's 300 s timeout."""
    if backend != "loky":
        return {}
    return {"initializer": exit_with_parent, "initargs": (os.getpid(), spill_dir)}


def _cause(exc: BaseException) -> tuple[str, int] | None:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)", 130
    if isinstance(exc, SystemExit):
        return "stopped (terminated)", exc.code if isinstance(exc.code, int) else 143
    if type(exc).__name__ in WORKER_DEATHS:
        return f"stopped (a worker died: {exc})", 1
    return None


def run(spec: SweepSpec, settings: EngineSettings = EngineSettings(), out_path: Path | None = None,
        config_yaml: str = "", pareto: ParetoSettings = ParetoSettings()) -> RunResult:
    """Evaluate every point; write ``out_path`` (atomically: one file, or a dataset directory when the
    table is not kept) if given; return the table (if kept) and the Pareto front.

    A sweep whose output would not fit on the disk of ``out_path`` is refused before it starts
    (``limits.check_disk``: a SpecError with the estimated size and time)."""
    t0 = time.perf_counter()
    total = spec.n_points
    keep = settings.keep(total, out_path is not None)
    meta = io.metadata(config_yaml)
    if out_path is not None:
        limits.check_disk(spec, out_path, settings.n_jobs)
    writer: io.BackgroundWriter | dataset.DatasetWriter | None = None
    stream: Generator[ChunkResult, None, None] | None = None
    kept: list[pa.Table] = []
    fronts = FrontFolder(pareto)
    counts = {"points": 0, "valid": 0, "fits": 0}
    bar = tqdm(total=total, unit="pt", unit_scale=True, file=sys.stderr, delay=1.0,
               disable=not settings.progress, desc="mantile")
    try:  # from the first file created: a signal anywhere in here deletes what was written
        writer = _writer(spec, out_path, keep, meta)
        parts = writer if isinstance(writer, dataset.DatasetWriter) else None
        stream = _stream(settings, _tasks(spec, settings.chunk_size, pareto, parts, meta), spill=parts is None)
        for res in stream:
            if isinstance(res.table, pa.Table):
                if isinstance(writer, io.BackgroundWriter):
                    writer.put(res.table)
                if keep:
                    kept.append(res.table)
            fronts.add(res.front)
            for key in counts:
                counts[key] += getattr(res, key)
            bar.update(res.points)
        if writer:
            writer.commit()
    except BaseException as exc:
        if stream is not None:
            stream.close()  # stop the workers before deleting what they write
        if writer:
            writer.abort()
        elif out_path is not None and not keep:  # interrupted while the staging directory was made
            dataset.discard(out_path)
        bar.close()
        cause = _cause(exc)
        if cause:
            raise SweepInterrupted(counts["points"], total, *cause) from exc
        raise
    bar.close()
    results = _frame(pa.concat_tables(kept)) if kept else None
    return RunResult(total, time.perf_counter() - t0, results, fronts.front(), out_path, counts)


def _writer(spec: SweepSpec, out_path: Path | None, keep: bool, meta: dict[bytes, bytes]
            ) -> io.BackgroundWriter | dataset.DatasetWriter | None:
    """One file written by the parent (a table that is kept), or a dataset written by the workers."""
    if out_path is None:
        return None
    if keep:
        return io.BackgroundWriter(io.AtomicParquetWriter(out_path, meta))
    return dataset.DatasetWriter(out_path, [(m, s) for m in spec.models for s in spec.systems])


def _frame(table: pa.Table) -> pl.DataFrame:
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    return df
