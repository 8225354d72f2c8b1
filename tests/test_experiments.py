"""Every preset in conf/experiment/ runs as the README shows it (slow: real CLI runs), and a run writes
the per-kernel table of its Pareto points."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from mantile.specs import ids


@pytest.mark.slow
@pytest.mark.parametrize("experiment", ids("experiment"))
def test_experiment_preset_runs(experiment: str, run_cli, tmp_path: Path) -> None:
    p = run_cli("mantile", f"experiment={experiment}", "executor.progress=false", f"hydra.run.dir={tmp_path}")
    assert p.returncode == 0, p.stderr[-2000:]
    assert (tmp_path / "results.parquet").is_file() and (tmp_path / "pareto.parquet").is_file()
    assert pl.read_parquet(tmp_path / "results.parquet").height > 1


@pytest.mark.slow
def test_kernels_parquet_adds_up_to_each_front_points_ttft_and_tpot(run_cli, tmp_path: Path) -> None:
    p = run_cli("mantile", "model=llama_3.1_8b", "hardware=nvidia_h100_80gb", "batch_size=[1,8,64]", "serving=pytorch",
                "show_kernels=true", f"hydra.run.dir={tmp_path}")
    assert p.returncode == 0, p.stderr[-2000:]
    assert "decode step of the first Pareto point" in p.stdout
    kernels = pl.read_parquet(tmp_path / "kernels.parquet")
    front = pl.read_parquet(tmp_path / "pareto.parquet")
    sums = kernels.group_by("batch_size", "phase").agg(pl.col("total_ms").sum())
    for row in front.iter_rows(named=True):  # static batching, pp = 1: TTFT = prefill, TPOT = decode step
        got = dict(sums.filter(pl.col("batch_size") == row["batch_size"]).select("phase", "total_ms").iter_rows())
        assert got["prefill"] == pytest.approx(row["ttft_ms"], rel=1e-9)
        assert got["decode"] == pytest.approx(row["tpot_ms"], rel=1e-9)
