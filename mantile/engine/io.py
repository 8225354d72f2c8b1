"""Parquet output: atomic writes (temp file + rename) with provenance metadata."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from mantile import __version__
from mantile.engine.table import SCHEMA_VERSION


def metadata(config_yaml: str = "") -> dict[bytes, bytes]:
    return {
        b"mantile_version": __version__.encode(),
        b"schema_version": SCHEMA_VERSION.encode(),
        b"config": config_yaml.encode(),
        b"created_at": dt.datetime.now(dt.timezone.utc).isoformat().encode(),
    }


def _arrow(df: pl.DataFrame) -> pa.Table:
    """Arrow table with categorical/enum columns as plain strings (one schema for every chunk)."""
    cats = [c for c, t in df.schema.items() if isinstance(t, (pl.Enum, pl.Categorical))]
    return df.with_columns(pl.col(cats).cast(pl.String)).to_arrow() if cats else df.to_arrow()


class AtomicParquetWriter:
    """Stream tables into ``path`` via a hidden temp file; rename on ``commit``, delete on ``abort``.

    A reader never sees a half-written file: either the old file (or none) or the complete new one.
    """

    def __init__(self, path: Path, meta: dict[bytes, bytes]) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self.meta = meta
        self.writer: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, df: pl.DataFrame) -> None:
        table = _arrow(df)
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            schema = table.schema.with_metadata(self.meta)
            self.writer = pq.ParquetWriter(self.tmp, schema, compression="zstd")
        self.writer.write_table(table.cast(self.writer.schema))
        self.rows += df.height

    def commit(self, empty_like: pl.DataFrame | None = None) -> None:
        if self.writer is None and empty_like is not None:
            self.write(empty_like)
        if self.writer is not None:
            self.writer.close()
            os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> AtomicParquetWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def write_parquet(df: pl.DataFrame, path: Path, config_yaml: str = "") -> Path:
    with AtomicParquetWriter(path, metadata(config_yaml)) as w:
        w.write(df)
    return Path(path)


def read_metadata(path: Path) -> dict[str, str]:
    meta = pq.read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in meta.items()}
