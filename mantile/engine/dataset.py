"""Big sweeps on disk: a hive-partitioned Parquet dataset that the workers write themselves.

Layout (Spark's convention: the dataset keeps the file name a small sweep would have had)::

    results.parquet/model_id=<model>/hardware_id=<hardware>/part-000042.parquet

One part file per grid chunk, written by the worker that evaluated it, in row groups of
``io.ROW_GROUP_ROWS``; the key columns live in the directory names only. The parts are written into
a hidden staging directory ``.results.parquet.<pid>.tmp`` that the driver renames to the final name
once every chunk is done (``commit``), or deletes (``abort``): a reader sees the old output or the
complete new one, never a part of it. The driver only creates the partition directories; a worker
never creates one, so a worker still running after an abort cannot bring a deleted staging
directory back.

Polars, pyarrow, pandas, DuckDB and Spark read ``results.parquet`` whether it is a file or this
directory (``scan`` below restores the column order and dtypes of the in-memory table).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import quote, unquote

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from mantile.engine import io

PARTITION_BY = ("model_id", "hardware_id")
PART_DIGITS = 6  # part-000042.parquet: names sort in grid order up to a million chunks per sweep
BATCH_ROWS = 1 << 20  # rows per batch when a dataset is read back in pieces (``batches``)
ABORT_TRIES, ABORT_RETRY_S = 20, 0.1  # deleting a staging directory that a worker still writes into


def partition_dir(root: Path, model_id: str, hardware_id: str) -> Path:
    """``root/model_id=<model>/hardware_id=<hardware>`` (values percent-encoded, as pyarrow does)."""
    return Path(root) / f"model_id={quote(model_id, safe='')}" / f"hardware_id={quote(hardware_id, safe='')}"


def part_path(root: Path, model_id: str, hardware_id: str, index: int) -> Path:
    return partition_dir(root, model_id, hardware_id) / f"part-{index:0{PART_DIGITS}d}.parquet"


def staging_dir(path: Path) -> Path:
    return Path(path).with_name(f".{Path(path).name}.{os.getpid()}.tmp")


def write_part(table: pa.Table, path: Path, meta: dict[bytes, bytes]) -> int:
    """Write one chunk (key columns dropped) to ``path`` via a hidden temp file; returns its size."""
    table = table.drop_columns([c for c in PARTITION_BY if c in table.column_names])
    dictionary = [c for c in table.column_names if c in io.DICTIONARY_COLUMNS]
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table.replace_schema_metadata(meta), tmp, compression="zstd", use_dictionary=dictionary,
                   row_group_size=io.ROW_GROUP_ROWS)
    os.replace(tmp, path)
    return path.stat().st_size


class DatasetWriter:
    """The driver's side: creates the staging directory and its partitions, then commits or aborts."""

    def __init__(self, path: Path, partitions: Iterable[tuple[str, str]]) -> None:
        self.path = Path(path)
        self.staging = staging_dir(self.path)
        io.remove_stale_temps(self.path)
        shutil.rmtree(self.staging, ignore_errors=True)
        for model_id, hardware_id in partitions:
            partition_dir(self.staging, model_id, hardware_id).mkdir(parents=True, exist_ok=True)

    def part(self, model_id: str, hardware_id: str, index: int) -> Path:
        return part_path(self.staging, model_id, hardware_id, index)

    def commit(self) -> None:
        io.replace_path(self.staging, self.path)

    def abort(self) -> None:
        discard(self.path)


def discard(path: Path) -> None:
    """Delete the staging directory of ``path`` (a worker may still be finishing a part meanwhile)."""
    staging = staging_dir(path)
    for _ in range(ABORT_TRIES):
        shutil.rmtree(staging, ignore_errors=True)
        if not staging.exists():
            return
        time.sleep(ABORT_RETRY_S)


def parts(root: Path) -> list[Path]:
    """The part files of a dataset, in grid order (by part number, then path)."""
    files = [p for p in Path(root).rglob("*.parquet") if not p.name.startswith(".")]
    return sorted(files, key=lambda p: (p.stem.rsplit("-", 1)[-1].zfill(PART_DIGITS), str(p)))


def partition_of(file: Path, root: Path) -> dict[str, str]:
    """``{"model_id": ..., "hardware_id": ...}`` from a part file's directory names."""
    keys = (part.split("=", 1) for part in file.relative_to(root).parts[:-1] if "=" in part)
    return {k: unquote(v) for k, v in keys}


def scan(root: Path) -> pl.LazyFrame:
    """The dataset as one lazy table with the in-memory table's column order and key dtypes."""
    files = parts(root)
    if not files:
        raise FileNotFoundError(f"no part files in {root}")
    lf = pl.scan_parquet(files, hive_partitioning=True,
                         hive_schema={k: pl.String for k in PARTITION_BY})
    names = lf.collect_schema().names()
    keys = [pl.col(k).cast(pl.Categorical) for k in PARTITION_BY if k in names]
    return lf.select(*keys, *[c for c in names if c not in PARTITION_BY])


def batches(root: Path, batch_rows: int = BATCH_ROWS) -> Iterator[pl.DataFrame]:
    """The dataset a batch at a time (with its key columns), in grid order: bounded memory."""
    for file in parts(root):
        keys = partition_of(file, root)
        for batch in pq.ParquetFile(file).iter_batches(batch_size=batch_rows):
            df = pl.from_arrow(batch)
            assert isinstance(df, pl.DataFrame)
            yield df.select(*[pl.lit(v, pl.Categorical).alias(k) for k, v in keys.items()], pl.all())


def count_rows(path: Path) -> int:
    """Rows of a results file or dataset, from the Parquet footers (no data read)."""
    files = parts(path) if Path(path).is_dir() else [Path(path)]
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def link_tree(src: Path, dst: Path) -> None:
    """Recreate ``src``'s files under ``dst`` as hard links (copies where links are not possible):
    the same dataset under a second name without a second copy on disk."""
    for file in parts(src):
        target = dst / file.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(file, target)
        except OSError:
            shutil.copyfile(file, target)


def scratch_path() -> Path:
    """``results.parquet`` in a new directory under ``$TMPDIR``, deleted when this Python process
    exits: where ``mantile.sweep`` writes a grid too big to return in memory."""
    root = Path(tempfile.mkdtemp(prefix="mantile-sweep-"))
    atexit.register(shutil.rmtree, root, True)
    return root / "results.parquet"
