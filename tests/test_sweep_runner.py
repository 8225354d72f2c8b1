"""The sweep runner: the same table whatever the backend or chunking, streaming without keeping the
table, atomic Parquet files, and clear errors for missing cluster extras."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from polars.testing import assert_frame_equal

from mantile.engine import io, runner
from mantile.engine.runner import EngineSettings, ParetoSettings, run
from mantile.engine.spec import make_spec
from mantile.engine.table import SCHEMA_VERSION
from mantile.specs import SpecError

AXES = {"tp": [1, 2, 3, 4], "pp": [1, 2], "batch_size": [1, 8, 64, 512], "input_seq": [512, 4096],
        "output_seq": [128, 256]}


@pytest.fixture(scope="module")
def spec():
    return make_spec(["llama_3.1_8b", "tinyllama_1.1b"], "nvidia_h100_80gb", AXES)


@pytest.fixture(scope="module")
def reference(spec):
    return run(spec, EngineSettings(n_jobs=1, progress=False))


def test_loky_workers_give_the_same_table_and_front(spec, reference, tmp_path: Path) -> None:
    res = run(spec, EngineSettings(n_jobs=2, chunk_size=23, progress=False), tmp_path / "results.parquet")
    assert_frame_equal(reference.results, res.results)
    assert_frame_equal(reference.pareto, res.pareto)
    assert res.counts == reference.counts and res.counts["points"] == spec.n_points == 256
    assert_frame_equal(pl.read_parquet(tmp_path / "results.parquet"), reference.results, check_dtypes=False)


def test_dask_cluster_gives_the_same_table(spec, reference) -> None:
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        settings = EngineSettings(backend="dask", address=cluster.scheduler_address, n_jobs=2, chunk_size=50,
                                  progress=False)
        res = run(spec, settings)
    assert_frame_equal(reference.results, res.results)
    assert_frame_equal(reference.pareto, res.pareto)


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="ray is installed")
def test_ray_backend_without_ray_says_how_to_install_it(spec, tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"pip install 'mantile\[ray\]'"):
        settings = EngineSettings(backend="ray", n_jobs=2, chunk_size=50, progress=False)
        run(spec, settings, tmp_path / "r.parquet")
    assert list(tmp_path.iterdir()) == []


def test_big_sweeps_stream_to_parquet_without_keeping_the_table(spec, reference, tmp_path: Path,
                                                                monkeypatch) -> None:
    monkeypatch.setattr(runner, "KEEP_IN_MEMORY_MAX_POINTS", 100)
    res = run(spec, EngineSettings(n_jobs=1, chunk_size=64, progress=False), tmp_path / "results.parquet")
    assert res.results is None
    assert_frame_equal(res.lazy().collect(), reference.results, check_dtypes=False)
    assert_frame_equal(res.pareto, reference.pareto, check_dtypes=False)
    assert EngineSettings(keep_in_memory=True).keep(10**9, True) and EngineSettings().keep(10**9, False)


def test_three_objective_front_is_folded_across_chunks(spec, tmp_path: Path) -> None:
    p = ParetoSettings(by=(), cost="cost_usd_per_million_tokens", latency="ttft_ms")
    whole = run(spec, EngineSettings(n_jobs=1, progress=False), pareto=p)
    chunked = run(spec, EngineSettings(n_jobs=1, chunk_size=7, progress=False), pareto=p)
    assert_frame_equal(whole.pareto, chunked.pareto)
    assert_frame_equal(whole.pareto, p.front(whole.results))


def test_atomic_writer_leaves_no_file_on_abort_and_removes_stale_temps(tmp_path: Path) -> None:
    target = tmp_path / "results.parquet"
    stale = tmp_path / ".results.parquet.999999.tmp"  # a process that no longer runs (killed -9)
    stale.write_bytes(b"half a file")
    w = io.BackgroundWriter(io.AtomicParquetWriter(target, io.metadata("a: 1")))
    w.put(pa.table({"x": list(range(io.ROW_GROUP_ROWS + 5))}))
    w.abort()
    assert list(tmp_path.iterdir()) == []
    io.write_parquet(pl.DataFrame({"x": [1, 2]}), target, "a: 1")
    assert pl.read_parquet(target)["x"].to_list() == [1, 2]
    assert io.read_metadata(target)["schema_version"] == SCHEMA_VERSION


def test_a_failing_chunk_writes_nothing(spec, tmp_path: Path, monkeypatch) -> None:
    calls = {"n": 0}
    real = runner.evaluate_chunk

    def flaky(*args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("boom")
        return real(*args)

    monkeypatch.setattr(runner, "evaluate_chunk", flaky)
    with pytest.raises(RuntimeError, match="boom"):
        run(spec, EngineSettings(n_jobs=1, chunk_size=40, progress=False), tmp_path / "results.parquet")
    assert os.listdir(tmp_path) == []
