"""Parquet output: atomic writes (temp file + rename) with provenance metadata, streamed from a thread.

Files are written with pyarrow: zstd pages, dictionary encoding for the low-cardinality columns only
(identity, flags, reasons), strings as Arrow dictionaries (read back as Categorical/Enum by Polars,
``category`` by pandas, VARCHAR by DuckDB and Spark).
"""

from __future__ import annotations

import datetime as dt
import os
import queue
import shutil
import threading
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from mantile import __version__
from mantile.engine.table import IDENTITY, SCHEMA_VERSION

DICTIONARY_COLUMNS = (*IDENTITY, "fits", "valid", "reason", "prefill_bound", "decode_bound", "max_batch_size")
ROW_GROUP_ROWS = 262_144  # rows buffered into one row group (small chunks are merged)


def metadata(config_yaml: str = "") -> dict[bytes, bytes]:
    return {
        b"mantile_version": __version__.encode(),
        b"schema_version": SCHEMA_VERSION.encode(),
        b"config": config_yaml.encode(),
        b"created_at": dt.datetime.now(dt.timezone.utc).isoformat().encode(),
    }


def arrow(df: pl.DataFrame | pa.Table) -> pa.Table:
    return df if isinstance(df, pa.Table) else df.to_arrow()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(path: Path) -> list[Path]:
    """Delete temp files of ``path`` left by a process that no longer runs (e.g. killed with SIGKILL)."""
    removed = []
    for tmp in Path(path).parent.glob(f".{Path(path).name}.*.tmp"):
        pid = tmp.name.rsplit(".", 2)[-2]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            if tmp.is_dir():  # a big sweep's staging directory (engine/dataset.py)
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def replace_path(src: Path, dst: Path) -> None:
    """Move ``src`` (file or directory) to ``dst``, replacing whatever ``dst`` is; the old ``dst`` is
    renamed aside first, so ``dst`` is at every moment either the old output or the new one."""
    src, dst = Path(src), Path(dst)
    if not dst.exists() and not dst.is_symlink():
        os.replace(src, dst)
        return
    if dst.is_file() and src.is_file():
        os.replace(src, dst)
        return
    old = dst.with_name(f".{dst.name}.{os.getpid()}.old")
    _remove_path(old)
    os.replace(dst, old)
    os.replace(src, dst)
    _remove_path(old)


def _remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


class AtomicParquetWriter:
    """Stream tables into ``path`` via a hidden temp file; rename on ``commit``, delete on ``abort``.

    A reader never sees a half-written file: either the old file (or none) or the complete new one.
    """

    def __init__(self, path: Path, meta: dict[bytes, bytes]) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self.meta = meta
        remove_stale_temps(self.path)
        self.writer: pq.ParquetWriter | None = None
        self.schema: pa.Schema | None = None
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.rows = 0

    def write(self, df: pl.DataFrame | pa.Table) -> None:
        table = arrow(df)
        self.pending.append(table)
        self.pending_rows += table.num_rows
        self.rows += table.num_rows
        if self.pending_rows >= ROW_GROUP_ROWS:
            self._flush()

    def _open(self, schema: pa.Schema) -> pq.ParquetWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        dictionary = [c for c in schema.names if c in DICTIONARY_COLUMNS]
        return pq.ParquetWriter(self.tmp, schema.with_metadata(self.meta), compression="zstd",
                                use_dictionary=dictionary)

    def _flush(self) -> None:
        if not self.pending:
            return
        if self.writer is None:
            self.schema = self.pending[0].schema
            self.writer = self._open(self.schema)
        schema = self.schema
        tables = [t if t.schema.equals(schema) else t.cast(schema) for t in self.pending]
        self.writer.write_table(pa.concat_tables(tables) if len(tables) > 1 else tables[0],
                                row_group_size=max(self.pending_rows, 1))
        self.pending, self.pending_rows = [], 0

    def commit(self, empty_like: pl.DataFrame | pa.Table | None = None) -> None:
        """Finish the temp file and rename it over ``path``; on any failure (disk full, read-only,
        out of memory) the temp file is removed and the error raised."""
        try:
            if self.writer is None and not self.pending and empty_like is not None:
                self.write(empty_like)
            self._flush()
            if self.writer is not None:
                self.writer.close()
                replace_path(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Drop everything and remove the temp file, even when closing it fails (disk full)."""
        self.pending = []
        try:
            if self.writer is not None:
                self.writer.close()
        except Exception:  # noqa: BLE001 - the file is being thrown away; its close error does not matter
            pass
        finally:
            self.writer = None
            self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> AtomicParquetWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class BackgroundWriter:
    """Feed an ``AtomicParquetWriter`` from a bounded queue in a thread: Parquet encoding (which
    releases the GIL) overlaps evaluation, and ``put`` blocks when the writer falls behind, which
    bounds memory. An error in the thread is raised again by the next ``put`` or by ``commit``."""

    def __init__(self, writer: AtomicParquetWriter, max_pending: int = 2) -> None:
        self.writer = writer
        self.queue: queue.Queue[pa.Table | None] = queue.Queue(maxsize=max_pending)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, name="mantile-parquet-writer", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while (table := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.writer.write(table)
                except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                    self.error = exc

    def put(self, table: pa.Table) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(table)

    def _join(self) -> None:
        self.queue.put(None)
        self.thread.join()

    def commit(self, empty_like: pl.DataFrame | pa.Table | None = None) -> None:
        self._join()
        if self.error is not None:
            self.writer.abort()
            raise self.error
        self.writer.commit(empty_like)

    def abort(self) -> None:
        self.error = self.error or RuntimeError("aborted")
        while True:  # drop what is queued so the thread sees the end marker at once
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
        self._join()
        self.writer.abort()


def write_parquet(df: pl.DataFrame | pa.Table, path: Path, config_yaml: str = "") -> Path:
    with AtomicParquetWriter(path, metadata(config_yaml)) as w:
        w.write(df)
    return Path(path)


def read_metadata(path: Path) -> dict[str, str]:
    meta = pq.read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in meta.items()}


def write_hive_dataset(df: pl.DataFrame, root: Path, partition_by: list[str], config_yaml: str = "") -> Path:
    """Write ``df`` as a hive-partitioned Parquet dataset ``root/<key>=<value>/.../part-0.parquet``
    (the key columns live in the directory names, not in the files), which DuckDB, pandas, Polars,
    pyarrow and Spark read as one table. Written next to ``root`` and swapped in by renames, so a
    reader sees the old dataset or the new one, never a mix."""
    import pyarrow.dataset as ds

    root = Path(root)
    tmp = root.with_name(f".{root.name}.{os.getpid()}.tmp")
    old = root.with_name(f".{root.name}.{os.getpid()}.old")
    for stale in (tmp, old):
        shutil.rmtree(stale, ignore_errors=True)
    table = df.with_columns(pl.col(partition_by).cast(pl.String)).to_arrow()
    table = table.replace_schema_metadata(metadata(config_yaml))
    options = ds.ParquetFileFormat().make_write_options(compression="zstd")
    ds.write_dataset(table, tmp, format="parquet", partitioning=partition_by, partitioning_flavor="hive",
                     basename_template="part-{i}.parquet", file_options=options,
                     max_rows_per_group=ROW_GROUP_ROWS, existing_data_behavior="error")
    if root.exists():
        root.rename(old)
    tmp.rename(root)
    shutil.rmtree(old, ignore_errors=True)
    return root
