"""End to end: the real ``python -m mantile`` in a temp dir."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

import mantile
from tests.test_python_api import CONTRACT


@pytest.mark.slow
def test_headline_multirun_writes_results_and_pareto(run_cli, tmp_path: Path) -> None:
    p = run_cli("mantile", "model=llama_3.3_70b", "hardware=nvidia_nvl72_rack", "-m", "tp=1,2,4,8",
                "hydra.sweep.dir=sweep")
    assert p.returncode == 0, p.stderr
    jobs = sorted((tmp_path / "sweep").glob("*/results.parquet"))
    assert len(jobs) == 4
    merged = pq.read_table(tmp_path / "sweep" / "results.parquet")
    assert merged.num_rows == 4 and sorted(merged.column("tp").to_pylist()) == [1, 2, 4, 8]
    assert set(CONTRACT) <= set(merged.column_names)
    meta = merged.schema.metadata
    assert b"mantile_version" in meta and b"schema_version" in meta
    job_meta = pq.read_schema(jobs[0]).metadata
    assert b"model: " in job_meta[b"config"] or b"model:" in job_meta[b"config"]
    assert b"created_at" in job_meta
    assert (tmp_path / "sweep" / "pareto.parquet").is_file()
    assert "Pareto front" in p.stdout and "llama_3.3_70b" in p.stdout
    assert not list((tmp_path / "sweep").rglob(".*.tmp"))


@pytest.mark.slow
def test_list_values_sweep_inside_one_run(run_cli, tmp_path: Path) -> None:
    p = run_cli("mantile", "model=llama_3.1_8b", "hardware=nvidia_h100_80gb",
                "batch_size=[1,2,4,8,16,32,64,128,256]", "input_seq=2048", "output_seq=256", "hydra.run.dir=run")
    assert p.returncode == 0, p.stderr
    t = pq.read_table(tmp_path / "run" / "results.parquet")
    assert t.num_rows == 9
    front = pq.read_table(tmp_path / "run" / "pareto.parquet").to_pylist()
    # the front trades latency for throughput: sorted by tpot, throughput rises
    assert len(front) >= 3
    assert all(a["tpot_ms"] <= b["tpot_ms"] and a["throughput_tokens_per_s_per_device"] <
               b["throughput_tokens_per_s_per_device"] for a, b in zip(front, front[1:], strict=False))
    assert "9 points" in p.stdout


@pytest.mark.slow
@pytest.mark.parametrize("override,needle", [
    ("tp=abc", "field 'tp' = 'abc'"),
    ("batch_size=0", "field 'batch_size' = 0"),
    ("dtype=bf17", "field 'dtype' = 'bf17'"),
    ("model=llama_9", "llama_3.1_8b"),
    ("tpp=2", "tpp"),
])
def test_malformed_override_fails_clearly(run_cli, tmp_path: Path, override: str, needle: str) -> None:
    p = run_cli("mantile", override, "hydra.run.dir=run")
    assert p.returncode != 0
    assert needle in p.stderr + p.stdout
    assert not (tmp_path / "run" / "results.parquet").exists()


@pytest.mark.slow
def test_summarize_is_idempotent(run_cli, tmp_path: Path) -> None:
    assert run_cli("mantile", "model=tinyllama_1.1b", "hardware=nvidia_h100_80gb", "-m", "tp=1,2",
                   "hydra.sweep.dir=s").returncode == 0
    first = pq.read_table(tmp_path / "s" / "results.parquet").num_rows
    p = run_cli("mantile.cli.summarize", "s")
    assert p.returncode == 0, p.stderr
    assert pq.read_table(tmp_path / "s" / "results.parquet").num_rows == first == 2


@pytest.mark.slow
def test_bad_value_in_a_later_job_stops_the_multirun_before_any_job(run_cli, tmp_path: Path) -> None:
    p = run_cli("mantile", "-m", "model=tinyllama_1.1b", "input_seq=512", "tp=1,abc", "hydra.sweep.dir=s")
    assert p.returncode == 2
    assert "field 'tp' = 'abc'" in p.stderr
    assert not list(tmp_path.rglob("results.parquet"))


def test_stated_engine_limits_win_over_the_profiles_device_rules(run_cli, tmp_path: Path) -> None:
    # vLLM caps an A100 at 256 running sequences (conf/serving/vllm.yaml device_rules); a flag the user
    # states on the command line is the engine as launched, on every GPU: all 512 clients run
    p = run_cli("mantile", "model=llama_3.1_8b", "hardware=nvidia_a100_80gb", "concurrency=512", "input_seq=128",
                "output_seq=128", "serving.scheduler.max_num_seqs=512", "hydra.run.dir=run")
    assert p.returncode == 0, p.stderr
    (row,) = pq.read_table(tmp_path / "run" / "results.parquet").to_pylist()
    expected = mantile.estimate(model="llama_3.1_8b", hardware="nvidia_a100_80gb", concurrency=512, input_seq=128,
                                output_seq=128, max_num_seqs=512)
    assert row["running_batch"] == expected["running_batch"] == 512
    assert row["ttft_ms"] == pytest.approx(expected["ttft_ms"], rel=1e-9)
