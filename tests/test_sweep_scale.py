"""Sweeps past the in-memory limit: workers write a hive-partitioned dataset, the multirun merge
streams, ``mantile.sweep`` returns a LazyFrame, and a grid too big for the disk is refused."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

import mantile
from mantile import estimator
from mantile.cli import summarize as summarize_mod
from mantile.engine import dataset, limits
from mantile.engine.runner import EngineSettings, ParetoSettings, run
from mantile.engine.spec import make_spec
from mantile.specs import SpecError

AXES = {"tp": [1, 2, 3, 4], "pp": [1, 2], "batch_size": [1, 8, 64, 512], "input_seq": [512, 4096],
        "output_seq": [128, 256]}


@pytest.fixture(scope="module")
def spec():
    return make_spec(["tinyllama_1.1b", "llama_3.1_8b"], ["nvidia_h100_80gb", "amd_mi300x"], AXES)


@pytest.fixture(scope="module")
def reference(spec):
    return run(spec, EngineSettings(n_jobs=1, progress=False))


def test_workers_write_the_dataset_with_the_same_rows_in_grid_order(spec, reference, tmp_path: Path) -> None:
    out = tmp_path / "results.parquet"
    res = run(spec, EngineSettings(n_jobs=2, chunk_size=37, keep_in_memory=False, progress=False), out)
    assert res.results is None and out.is_dir()
    assert_frame_equal(res.lazy().collect(), reference.results)  # same values, order and dtypes
    assert_frame_equal(res.pareto, reference.pareto)
    # 4 (model, hardware) pairs x ceil(128 / 37) = 4 chunks: one part file each, no key columns inside
    files = dataset.parts(out)
    assert len(files) == 4 * 4 and {f.parent.parent.name for f in files} == {
        "model_id=tinyllama_1.1b", "model_id=llama_3.1_8b"}
    assert "model_id" not in pq.read_schema(files[0]).names
    n = duckdb.sql(f"SELECT count(*) FROM read_parquet('{out}/**/*.parquet', hive_partitioning=true)").fetchall()
    assert n == [(spec.n_points,)] and pq.read_table(out).num_rows == spec.n_points
    assert [p.name for p in tmp_path.iterdir()] == ["results.parquet"]  # the staging directory is gone


def test_a_dataset_and_a_file_replace_each_other(spec, tmp_path: Path) -> None:
    out = tmp_path / "results.parquet"
    run(spec, EngineSettings(keep_in_memory=False, progress=False), out)
    run(spec, EngineSettings(progress=False), out)
    assert out.is_file()
    run(spec, EngineSettings(keep_in_memory=False, progress=False), out)
    assert out.is_dir() and [p.name for p in tmp_path.iterdir()] == ["results.parquet"]


def test_folded_front_equals_the_front_of_the_whole_table(reference) -> None:
    p = ParetoSettings(by=(), cost="cost_usd_per_million_tokens")
    pieces = (reference.results.slice(i, 50) for i in range(0, reference.results.height, 50))
    assert_frame_equal(p.fold(pieces), p.front(reference.results))


def test_streamed_multirun_merge_equals_the_in_memory_merge(tmp_path: Path, monkeypatch) -> None:
    jobs = [("llama_3.1_8b", "nvidia_h100_80gb", [1, 8, 64], True),
            ("tinyllama_1.1b", "nvidia_h100_80gb", [1, 8], False),
            ("llama_3.1_8b", "nvidia_h100_80gb", [64, 128], False)]  # job 2 overlaps job 0 at batch 64
    for i, (model, hardware, batches, as_dataset) in enumerate(jobs):
        s = make_spec(model, hardware, {"tp": [1, 2], "batch_size": batches, "input_seq": 1024, "output_seq": 128})
        run(s, EngineSettings(chunk_size=4, keep_in_memory=not as_dataset, progress=False),
            tmp_path / str(i) / "results.parquet")
    eager = summarize_mod.merge(tmp_path)
    monkeypatch.setattr(summarize_mod, "KEEP_IN_MEMORY_MAX_POINTS", 0)
    front = summarize_mod.summarize(tmp_path, quiet=True)
    merged = pl.read_parquet(tmp_path / "results.parquet", hive_partitioning=True)
    key = ["model_id", "hardware_id", "tp", "batch_size"]
    as_str = pl.col("model_id", "hardware_id").cast(pl.String)
    got, want = merged.with_columns(as_str).sort(key), eager.with_columns(as_str).sort(key)
    assert got.height == 6 + 4 + 2 == want.height
    assert_frame_equal(got.select(want.columns), want, check_dtypes=False)
    assert_frame_equal(front.with_columns(as_str).sort(key),
                       ParetoSettings().front(eager).with_columns(as_str).sort(key), check_dtypes=False)


def test_sweep_returns_a_lazy_frame_past_the_in_memory_limit(monkeypatch) -> None:
    kw = dict(model="llama_3.1_8b", hardware="nvidia_h100_80gb", batch_size=[1, 8, 64], input_seq=1024,
              output_seq=128, tp=[1, 2])
    small = mantile.sweep(**kw)
    monkeypatch.setattr(estimator, "KEEP_IN_MEMORY_MAX_POINTS", 4)
    monkeypatch.setattr("mantile.engine.runner.KEEP_IN_MEMORY_MAX_POINTS", 4)
    big = mantile.sweep(**kw)
    assert isinstance(small, pl.DataFrame) and isinstance(big, pl.LazyFrame)
    assert_frame_equal(big.collect(), small)


def test_a_grid_too_big_for_the_disk_is_refused_with_its_size_and_time(spec, tmp_path: Path, monkeypatch) -> None:
    rows, n_bytes, seconds = limits.estimate_output(spec, n_jobs=2)
    assert rows == 512 and n_bytes == 512 * limits.PARQUET_BYTES_PER_ROW
    assert seconds == pytest.approx(512 / (2 * limits.POINTS_PER_S_PER_WORKER))
    monkeypatch.setattr(limits, "free_bytes", lambda path: 1000)
    # 512 rows x 84 bytes = 43,008 bytes; x 1.2 headroom = 51,610 bytes
    with pytest.raises(SpecError, match=r"512 rows, ~43.0 KB of Parquet, ~0 s.*needs ~51.6 KB free"):
        run(spec, EngineSettings(progress=False), tmp_path / "results.parquet")
    assert list(tmp_path.iterdir()) == []


def test_dask_workers_write_the_same_dataset(spec, reference, tmp_path: Path) -> None:
    from dask.distributed import LocalCluster

    out = tmp_path / "results.parquet"
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        settings = EngineSettings(backend="dask", address=cluster.scheduler_address, n_jobs=2, chunk_size=50,
                                  keep_in_memory=False, progress=False)
        res = run(spec, settings, out)
    assert res.results is None and len(dataset.parts(out)) == 4 * 3  # ceil(128 / 50) chunks per pair
    assert_frame_equal(res.lazy().collect(), reference.results)
    assert_frame_equal(res.pareto, reference.pareto)
