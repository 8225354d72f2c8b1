"""The merged multirun output as a hive-partitioned Parquet dataset that DuckDB, pandas and Polars
read as one table."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest

from mantile.cli.summarize import summarize
from mantile.engine.runner import EngineSettings, run
from mantile.engine.spec import make_spec
from mantile.engine.table import IDENTITY, OPTIONAL_IDENTITY, SCHEMA_VERSION


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    """A multirun-shaped directory: one job per (model, hardware), plus a job that repeats job 0."""
    root = tmp_path_factory.mktemp("sweep")
    jobs = [("llama_3.1_8b", "nvidia_h100_80gb"), ("tinyllama_1.1b", "nvidia_h100_80gb"),
            ("llama_3.1_8b", "amd_mi300x"), ("llama_3.1_8b", "nvidia_h100_80gb")]
    for i, (model, hardware) in enumerate(jobs):
        spec = make_spec(model, hardware, {"tp": [1, 2], "batch_size": [1, 8, 64], "input_seq": 1024,
                                           "output_seq": 128})
        run(spec, EngineSettings(progress=False), root / str(i) / "results.parquet", "sla: {ttft_ms: 500}")
    summarize(root, quiet=True)
    return root


def test_duckdb_reads_the_dataset_as_one_table(sweep_dir: Path) -> None:
    rows = duckdb.sql(f"""
        SELECT model_id, hardware_id, count(*) AS n, max(throughput_tokens_per_s_per_device) AS best
        FROM read_parquet('{sweep_dir}/dataset/**/*.parquet', hive_partitioning = true)
        GROUP BY ALL ORDER BY ALL""").fetchall()
    # job 3 repeats job 0: its rows replace job 0's, they are not added
    assert [r[:3] for r in rows] == [("llama_3.1_8b", "amd_mi300x", 6),
                                     ("llama_3.1_8b", "nvidia_h100_80gb", 6),
                                     ("tinyllama_1.1b", "nvidia_h100_80gb", 6)]
    assert all(r[3] > 0 for r in rows)


def test_pandas_and_polars_read_the_same_rows(sweep_dir: Path) -> None:
    pdf = pd.read_parquet(sweep_dir / "dataset")
    ldf = pl.read_parquet(sweep_dir / "dataset" / "**" / "*.parquet", hive_partitioning=True)
    merged = pl.read_parquet(sweep_dir / "results.parquet")
    assert len(pdf) == ldf.height == merged.height == 18
    written = set(IDENTITY) - set(OPTIONAL_IDENTITY)  # concurrency, request_rate: only when used
    assert written <= set(pdf.columns) and written <= set(ldf.columns)
    key = ["model_id", "hardware_id", "tp", "batch_size"]
    ids = pl.col("model_id", "hardware_id").cast(pl.String)
    a = ldf.select(*key, "tpot_ms").with_columns(ids).sort(key)
    b = merged.select(*key, "tpot_ms").with_columns(ids).sort(key)
    assert a.equals(b)


def test_files_hold_no_key_columns_and_carry_the_schema_version(sweep_dir: Path) -> None:
    files = sorted((sweep_dir / "dataset").rglob("*.parquet"))
    assert [f.relative_to(sweep_dir / "dataset").parts[:2] for f in files] == [
        ("model_id=llama_3.1_8b", "hardware_id=amd_mi300x"),
        ("model_id=llama_3.1_8b", "hardware_id=nvidia_h100_80gb"),
        ("model_id=tinyllama_1.1b", "hardware_id=nvidia_h100_80gb")]
    for f in files:
        schema = pq.read_schema(f)
        assert "model_id" not in schema.names and "hardware_id" not in schema.names
        assert schema.metadata[b"schema_version"] == SCHEMA_VERSION.encode()
        assert b"ttft_ms: 500" in schema.metadata[b"config"]


def test_summarizing_again_rewrites_instead_of_appending(sweep_dir: Path) -> None:
    summarize(sweep_dir, quiet=True)
    n = duckdb.sql(f"SELECT count(*) FROM read_parquet('{sweep_dir}/dataset/**/*.parquet')").fetchall()
    assert n == [(18,)]
    assert not [p for p in sweep_dir.iterdir() if p.name.startswith(".")]
