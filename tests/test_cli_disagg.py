"""The CLI's disaggregated runs (mantile/cli/disagg.py): one point, a grid inside one run, a ``-m`` sweep,
``disagg.ratio=auto`` and bad keys; every number is compared with ``mantile.estimate_disagg`` or derived
by hand."""

from __future__ import annotations

import itertools
from pathlib import Path

import polars as pl
import pytest
from hydra import compose, initialize_config_dir

import mantile
from mantile.cli import disagg
from mantile.cli.overrides import prepare
from mantile.specs import SpecError, conf_dir

H100 = "nvidia_h100_80gb"
CHOICES = {"model": "llama_3.3_70b", "hardware": H100, "serving": "vllm"}
METRICS = ("num_devices", "ttft_ms", "tpot_ms", "kv_transfer_ms", "throughput_tokens_per_s_per_device",
           "request_throughput_per_s", "fits", "valid", "kv_link")


def _cfg(*overrides: str):  # noqa: ANN202
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose("config", overrides=[f"model={CHOICES['model']}", f"hardware={H100}", *overrides])


def _same(row: dict, expected: dict) -> None:
    for k in METRICS:
        assert row[k] == (pytest.approx(expected[k]) if isinstance(expected[k], float) else expected[k]), k


def test_single_run_prints_and_writes_the_python_apis_numbers(run_cli, tmp_path: Path) -> None:
    p = run_cli("mantile", "model=llama_3.3_70b", f"hardware={H100}", "disagg.prefill.tp=2",
                "disagg.prefill.instances=2", "disagg.decode.tp=4", "disagg.decode.instances=1", "input_seq=2048",
                "output_seq=256", "concurrency=64", "hydra.run.dir=run")
    assert p.returncode == 0, p.stderr
    expected = mantile.estimate_disagg("llama_3.3_70b", 2048, 256, {"hardware": H100, "tp": 2, "instances": 2},
                                       {"hardware": H100, "tp": 4}, concurrency=64)
    (row,) = pl.read_parquet(tmp_path / "run" / "results.parquet").to_dicts()
    _same(row, expected)
    # by hand: 2 prefill instances of tp 2 and 1 decode instance of tp 4 = 8 GPUs, one H100 node (8 GPUs per
    # NVLink domain), so the KV cache moves over NVLink; per device = requests/s x 256 tokens / 8
    assert row["num_devices"] == 2 * 2 + 4 and row["kv_link"] == "nvlink"
    assert row["throughput_tokens_per_s_per_device"] == pytest.approx(row["request_throughput_per_s"] * 256 / 8)
    for text in (f"TTFT {expected['ttft_ms']:,.2f} ms", f"TPOT {expected['tpot_ms']:,.2f} ms", "= 8 devices",
                 f"{expected['throughput_tokens_per_s_per_device']:,.1f} per device", "over nvlink", "fits=true"):
        assert text in p.stdout, text
    assert (tmp_path / "run" / "pareto.parquet").is_file()


def test_lists_cross_into_a_grid_of_python_api_rows() -> None:
    cfg = _cfg("disagg.prefill.tp=[2,4]", "disagg.decode.tp=[4,8]", "disagg.prefill.instances=[1,2]",
               "input_seq=1024", "output_seq=128", "request_rate=2")
    df = disagg.evaluate(cfg, CHOICES)
    assert df.height == 8
    for ptp, pn, dtp in itertools.product((2, 4), (1, 2), (4, 8)):
        row = df.filter((pl.col("disagg.prefill.tp") == ptp) & (pl.col("disagg.prefill.instances") == pn)
                        & (pl.col("disagg.decode.tp") == dtp)).to_dicts()
        assert len(row) == 1
        # sides inherit the run's serving (vllm), pp = ep = 1 and the checkpoint's dtype (bf16)
        assert (row[0]["disagg.decode.serving"], row[0]["disagg.decode.pp"], row[0]["disagg.prefill.dtype"]) == (
            "vllm", 1, "bf16")
        _same(row[0], mantile.estimate_disagg("llama_3.3_70b", 1024, 128,
                                              {"hardware": H100, "tp": ptp, "instances": pn},
                                              {"hardware": H100, "tp": dtp}, request_rate=2.0))
    assert "8 points" in disagg.describe(df)


def test_num_requests_is_a_finite_run_in_the_grid() -> None:
    cfg = _cfg("disagg.prefill.tp=2", "disagg.decode.tp=4", "input_seq=2048", "output_seq=256", "concurrency=32",
               "num_requests=[0,320]")
    df = disagg.evaluate(cfg, CHOICES)
    assert sorted(df["num_requests"].to_list()) == [0, 320]
    for n in (0, 320):
        (row,) = df.filter(pl.col("num_requests") == n).to_dicts()
        _same(row, mantile.estimate_disagg("llama_3.3_70b", 2048, 256, {"hardware": H100, "tp": 2},
                                           {"hardware": H100, "tp": 4}, concurrency=32, num_requests=n))


def test_ratio_auto_chooses_what_disagg_ratio_chooses() -> None:
    cfg = _cfg("disagg.ratio=auto", "disagg.prefill.tp=2", "disagg.decode.tp=4", "input_seq=2048", "output_seq=256",
               "request_rate=10")
    (row,) = disagg.evaluate(cfg, CHOICES).to_dicts()
    r = mantile.disagg_ratio("llama_3.3_70b", 2048, 256, {"hardware": H100, "tp": 2}, {"hardware": H100, "tp": 4},
                             request_rate=10)
    assert (row["disagg.prefill.instances"], row["disagg.decode.instances"]) == (r["prefill_instances"],
                                                                                r["decode_instances"])
    assert row["valid"] and row["request_throughput_per_s"] == pytest.approx(10.0)
    assert "ratio=auto: P=" in disagg.describe_row(row)


def test_multirun_sweep_merges_the_jobs_rows(run_cli, tmp_path: Path) -> None:
    p = run_cli("mantile", "model=llama_3.1_8b", f"hardware={H100}", "-m", "disagg.decode.tp=1,2",
                "disagg.prefill.instances=1,2", "input_seq=1024", "output_seq=128", "concurrency=16",
                "hydra.sweep.dir=sweep")
    assert p.returncode == 0, p.stderr
    df = pl.read_parquet(tmp_path / "sweep" / "results.parquet")
    assert df.height == 4  # four distinct deployments, none merged away
    for row in df.to_dicts():
        _same(row, mantile.estimate_disagg("llama_3.1_8b", 1024, 128,
                                           {"hardware": H100, "instances": row["disagg.prefill.instances"]},
                                           {"hardware": H100, "tp": row["disagg.decode.tp"]}, concurrency=16))
    assert "merged 4 job(s), 4 disaggregated rows" in p.stdout and (tmp_path / "sweep" / "pareto.parquet").is_file()


@pytest.mark.parametrize("override,needle", [
    ("disagg.prefill.tpp=2", "'disagg.prefill.tpp' = 2 is invalid: unknown key; did you mean 'disagg.prefill.tp'"),
    ("disagg.prefil.tp=2", "did you mean 'disagg.prefill'"),
    ("disagg.ratio=balanced", "'disagg.ratio' = 'balanced' is invalid: auto"),
    ("disagg.decode.hardware=nvidia_h100", "'disagg.decode.hardware' = 'nvidia_h100' is invalid: one of 'amd_mi300x'"),
    ("disagg.decode.dtype=fp9", "'disagg.decode.dtype' = 'fp9' is invalid: one of 'auto', 'fp32'"),
    ("disagg.prefill.tp=0", "'disagg.prefill.tp' = 0 is invalid: a positive integer"),
    ("disagg.max_devices=-1", "'disagg.max_devices' = -1 is invalid: a positive integer"),
])
def test_bad_keys_and_values_name_the_field_before_any_work(override: str, needle: str) -> None:
    with pytest.raises(SpecError) as e:
        prepare([override, "concurrency=8"], multirun=False)
        disagg.points(_cfg(override, "concurrency=8"), CHOICES)
    assert needle in str(e.value)


def test_a_bad_value_in_a_later_job_stops_the_sweep_before_the_first(run_cli, tmp_path: Path) -> None:
    p = run_cli("mantile", f"hardware={H100}", "-m", "disagg.decode.tp=4,x", "concurrency=8", "hydra.sweep.dir=sweep")
    assert p.returncode == 2 and "'disagg.decode.tp' = 'x' is invalid: a positive integer" in p.stderr
    assert not list(tmp_path.rglob("results.parquet"))


@pytest.mark.parametrize("overrides,needle", [
    ((), "'concurrency' = None is invalid: exactly one load"),
    (("concurrency=8", "request_rate=1"), "exactly one load"),
    (("tp=[2,4]", "concurrency=8"), "'tp' = [2, 4] is invalid: one value in a disaggregated run"),
    (("disagg.ratio=auto", "concurrency=8"), "'disagg.ratio' = 'auto' is invalid: a load (request_rate) or a device "
                                             "budget"),
    (("disagg.ratio=auto", "disagg.prefill.instances=2", "request_rate=1"), "'disagg.prefill.instances' = 2"),
    (("spec.method=eagle", "spec.num_tokens=3", "concurrency=8"), "'spec.method' = 'eagle' is invalid: none in a "
                                                                   "disaggregated run"),
    (("prefix_cache_hit_rate=0.5", "concurrency=8"), "'prefix_cache_hit_rate' = 0.5 is invalid: 0.0 in a disagg"),
    (("dp=2", "concurrency=8"), "'dp' = 2 is invalid: 1 in a disaggregated run"),
    (("study=capacity", "concurrency=8"), "'study' = 'capacity' is invalid"),
])
def test_run_level_errors_name_the_field(overrides: tuple[str, ...], needle: str) -> None:
    with pytest.raises(SpecError) as e:
        disagg.evaluate(_cfg("disagg.decode.tp=4", *overrides), CHOICES)
    assert needle in str(e.value)


def test_an_aggregated_run_is_not_disaggregated() -> None:
    assert not disagg.requested(_cfg("concurrency=8")) and disagg.requested(_cfg("disagg.decode.instances=2"))
