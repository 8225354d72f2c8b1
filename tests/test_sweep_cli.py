"""The real ``python -m mantile`` with the issue's studies: capacity, SLA search, plots, summarize."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest


@pytest.mark.slow
def test_capacity_study_prints_the_capacity_table(run_cli, tmp_path: Path) -> None:
    p = run_cli("mantile", "model=llama_3.1_8b", "hardware=nvidia_h100_80gb", "study=capacity",
                "hydra.run.dir=run")
    assert p.returncode == 0, p.stderr
    assert "Batch capacity (1 plans" in p.stdout and "Throughput/latency curve" in p.stdout
    cap = pl.read_parquet(tmp_path / "run" / "capacity.parquet").row(0, named=True)
    assert cap["limited_by"] == "memory" and cap["batch_limit"] == cap["max_batch_size"] > 100
    assert cap["kv_cache_budget_gb_per_device"] > 50  # 80 GB device, 16 GB of weights
    curve = pl.read_parquet(tmp_path / "run" / "results.parquet")
    fits = curve.filter(pl.col("fits"))["batch_size"].to_list()
    assert fits[:4] == [1, 2, 4, 8] and max(fits) == cap["max_batch_size"]
    assert not curve.filter(pl.col("batch_size") > cap["max_batch_size"])["fits"].any()


@pytest.mark.slow
def test_sla_search_ranks_plans_and_draws_the_front(run_cli, tmp_path: Path) -> None:
    p = run_cli("mantile", "model=llama_3.3_70b", "hardware=nvidia_h100_80gb", "tp=[1,2,4,8]",
                "batch_size=[1,4,16,64,256]", "sla.ttft_ms=500", "sla.tpot_ms=50", "plot=true",
                "hydra.run.dir=run")
    assert p.returncode == 0, p.stderr
    assert "SLA ttft_ms <= 500, tpot_ms <= 50:" in p.stdout and "Best " in p.stdout
    assert "Closest miss: llama_3.3_70b on nvidia_h100_80gb, tp=" in p.stdout and "% over" in p.stdout
    png = tmp_path / "run" / "pareto_llama_3.3_70b_nvidia_h100_80gb.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


@pytest.mark.slow
def test_summarize_plots_one_front_across_everything(run_cli, tmp_path: Path) -> None:
    assert run_cli("mantile", "-m", "model=tinyllama_1.1b,llama_3.1_8b", "hardware=nvidia_h100_80gb",
                   "batch_size=[1,16,128]", "hydra.sweep.dir=s").returncode == 0
    p = run_cli("mantile.cli.summarize", "s", "--plot", "--by", "", "--latency", "ttft_ms", "--tpot-ms", "20")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "s" / "pareto.png").is_file() and "SLA tpot_ms <= 20" in p.stdout
    front = pl.read_parquet(tmp_path / "s" / "pareto.parquet")
    assert front["ttft_ms"].is_sorted() and front["model_id"].n_unique() >= 1


@pytest.mark.slow
@pytest.mark.parametrize("override,needle", [
    ("sla.ttft_ms=-5", "ttft_ms"), ("+sla.latency_ms=5", "latency_ms"), ("pareto.latency=p99_ms", "p99_ms"),
    ("executor.backend=spark", "spark")])
def test_bad_study_settings_fail_before_any_work(run_cli, tmp_path: Path, override: str, needle: str) -> None:
    p = run_cli("mantile", "model=tinyllama_1.1b", "hardware=nvidia_h100_80gb", override, "hydra.run.dir=run")
    assert p.returncode == 2, p.stderr
    assert needle in p.stderr
    assert not list((tmp_path / "run").glob("*.parquet"))
