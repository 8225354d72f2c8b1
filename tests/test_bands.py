"""Physics floors, error bands and ``mantile.check`` (issue 13).

Floors are the cost model on the ideal machine (``serving/ideal.py``); the expected values below are
derived by hand from datasheet figures and model shapes, not read from the code.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import mantile
from mantile import check, residuals
from mantile.costs.blocks import Work
from mantile.costs.comm import Network
from mantile.costs.feedforward import MoEMLP
from mantile.costs.kernels import Machine
from mantile.serving import ideal
from mantile.specs import bands, load_efficiency, load_hardware, load_serving
from mantile.validate import predictions, read_rows

H100_BW = 3.35e12  # bytes/s, datasheet (conf/hardware/nvidia_h100_80gb.yaml)
H100_BF16 = 989.4e12  # dense FLOP/s
PUBLISHED = Path(__file__).resolve().parent.parent / "benchmarks" / "published"
CALIBRATION_DIR = Path(__file__).resolve().parent.parent / "benchmarks" / "calibration"


def test_decode_floor_is_the_weights_and_kv_cache_over_the_datasheet_bandwidth() -> None:
    # Llama 3.1 8B, bf16, one sequence: a decode step reads every decoder weight, the LM head and
    # the KV cache at least once. Per layer: q 4096^2 + k,v 2 x 4096 x 1024 + o 4096^2 = 41.94M, MLP
    # 3 x 4096 x 14336 = 176.16M -> 218.10M x 32 = 6979.3M; LM head 128256 x 4096 = 525.3M (the
    # embedding is a lookup of one row). 7504.7M x 2 B = 15.009 GB -> 4.480 ms at 3.35 TB/s.
    # KV cache at the mean context 2048 + 256/2 = 2176: 32 layers x 2 x 8 heads x 128 x 2 B = 131072
    # B/token -> 285.2 MB -> 0.085 ms. Floor >= 4.565 ms; activations (a few MB) add < 0.5%.
    r = mantile.estimate("llama_3.1_8b", "nvidia_h100_80gb", batch_size=1, input_seq=2048, output_seq=256,
                         serving="pytorch")
    by_hand = (7504.7e6 * 2 + 2176 * 131072) / H100_BW * 1e3
    assert by_hand <= r["tpot_floor_ms"] <= by_hand * 1.005
    assert r["tpot_floor_ms"] < r["tpot_ms"]


def test_prefill_floor_is_at_least_the_gemm_flops_at_the_dense_peak() -> None:
    # 8 x 4096 = 32768 tokens through 6979.3M decoder weights: 2 x 6979.3M x 32768 = 457.4 TFLOP ->
    # 462.3 ms at 989.4 TFLOP/s; causal attention adds 4 x 8 x 32 heads x 4096 x 2048.5 x 128 x 32
    # layers = 35.2 TFLOP (35.6 ms); two RMSNorms per layer read and write the hidden state: 64 x 2 x
    # 32768 x 4096 x 2 B = 34.4 GB (10.3 ms); the LM head on 8 last positions reads 1.05 GB (0.3 ms).
    r = mantile.estimate("llama_3.1_8b", "nvidia_h100_80gb", batch_size=8, input_seq=4096, output_seq=1,
                         serving="pytorch")
    gemm_ms = 2 * 6979.3e6 * 32768 / H100_BF16 * 1e3
    attention_ms = 4 * 8 * 32 * 4096 * 2048.5 * 128 * 32 / H100_BF16 * 1e3
    norm_ms, head_ms = 64 * 2 * 32768 * 4096 * 2 / H100_BW * 1e3, 525.3e6 * 2 / H100_BW * 1e3
    by_hand = gemm_ms + attention_ms + norm_ms + head_ms
    assert by_hand * 0.999 <= r["ttft_floor_ms"] <= by_hand * 1.003
    assert r["ttft_floor_ms"] < r["ttft_ms"]


def test_ideal_moe_reads_only_the_experts_one_routing_must_touch() -> None:
    # Mixtral 8x7B (8 experts, top-2, h 4096, f 14336), 64 decode tokens at ep = 1: balanced random
    # routing touches 8 x (1 - (6/8)^64) ~ 8 experts; the least any routing reads is ceil(2 / 1) = 2
    # experts x 3 x 4096 x 14336 = 352.3M weights x 2 B = 704.6 MB (the router's 4096 x 8 on top).
    hw = load_hardware("nvidia_h100_80gb")
    eff, serving = load_efficiency("hopper"), load_serving("vllm")
    _, i_eff, i_serving = ideal.machine(hw, eff, serving)
    block = MoEMLP(hidden_size=4096, intermediate_size=14336, gated=True, num_experts=8, experts_per_token=2)
    w = Work("decode", 64.0, 1.0, 2048.0, 2.0, 2.0, 2.0)
    costs = {}
    for name, e, s in (("expected", eff, serving), ("minimal", i_eff, i_serving)):
        m = Machine(H100_BF16, H100_BW, 132, e, s.kernels)
        costs[name] = float(np.asarray(block.cost(m, w, Network.of(hw, e)).weight_bytes))
    assert costs["minimal"] == pytest.approx((2 * 3 * 4096 * 14336 + 4096 * 8) * 2, rel=1e-9)
    assert costs["expected"] == pytest.approx((8 * 3 * 4096 * 14336 * (1 - 0.75 ** 64) + 4096 * 8) * 2, rel=1e-9)


@pytest.mark.parametrize("kw", [
    dict(model="llama_3.3_70b", hardware="nvidia_h100_80gb", tp=[1, 2, 4, 8], batch_size=[1, 16, 256],
         input_seq=[128, 4096], output_seq=[16, 1024], serving="vllm"),
    dict(model="llama_3.3_70b", hardware="nvidia_nvl72_rack", tp=[4, 8], pp=[1, 2], batch_size=[1, 64],
         input_seq=[1024], output_seq=[256], serving="pytorch", dtype=["bf16", "fp8"]),
    dict(model="mixtral_8x7b", hardware="nvidia_h200_141gb", tp=[1, 2, 8], ep=[1, 2], concurrency=[1, 32, 512],
         input_seq=[1000], output_seq=[1000], serving="sglang"),
    dict(model="mixtral_8x7b", hardware="nvidia_h100_80gb", tp=[2, 4], request_rate=[0.5, 4.0, 32.0],
         input_seq=[2000], output_seq=[200], serving="trtllm"),
])
def test_floors_and_bands_bound_every_estimate(kw: dict) -> None:
    """The ideal machine is never slower than the real one, and the band respects the floor."""
    df = mantile.sweep(**kw).filter("valid")
    assert df.height > 0
    for value, floor in (("ttft_ms", "ttft_floor_ms"), ("tpot_ms", "tpot_floor_ms")):
        assert (df[floor] > 0).all() and (df[floor] <= df[value] * (1 + 1e-9)).all(), value
        assert (df[value.replace("_ms", "_p10_ms")] >= df[floor]).all()
        assert (df[value.replace("_ms", "_p10_ms")] <= df[value.replace("_ms", "_p90_ms")]).all()
    assert (df["throughput_ceiling_tokens_per_s"] >= df["throughput_tokens_per_s"] * (1 - 1e-9)).all()
    assert (df["throughput_p90_tokens_per_s"] <= df["throughput_ceiling_tokens_per_s"]).all()
    assert (df["band_residuals"] > 0).all() and df["band_basis"].null_count() == 0


def test_band_lookup_backs_off_and_says_why() -> None:
    own = bands.find("trtllm_bench", "hopper", "fp8", False, "concurrency")
    assert own.specificity == 5 and own.residuals >= residuals.MIN_RESIDUALS and "backed off" not in own.basis
    new_engine = bands.find("a_new_engine", "hopper", "fp8", False, "concurrency")
    assert new_engine.specificity == 0 and "backed off" in new_engine.basis and "widened" in new_engine.basis
    new_generation = bands.find("trtllm_bench", "cdna3", "fp8", False, "concurrency")
    assert new_generation.regime[:2] == ("trtllm_bench", "*") and "widened" in new_generation.basis
    # a backed-off band is wider (in log terms) than the regime band it replaces, from the same rows
    assert np.log(new_generation.p90_ratio / new_generation.p10_ratio) > np.log(own.p90_ratio / own.p10_ratio)


def test_band_file_is_what_make_bands_writes() -> None:
    """Every row of conf/bands.csv parses, and there is a catch-all row (specs/bands.read checks both)."""
    table = bands.read(mantile.specs.conf_dir() / bands.FILE)
    assert table[-1].specificity == 0 and all(b.p10_ratio <= b.p90_ratio for b in table)


def _published(tmp_path: Path, **changes: object) -> Path:
    head = "kind,model,hardware,dtype,tp,pp,dp,batch,input_seq,output_seq,batching,metric,value,software,source"
    row = dict(kind="published", model="llama_3.1_8b", hardware="nvidia_h100_80gb", dtype="bf16", tp=1, pp=1, dp=1,
               batch=8, input_seq=1024, output_seq=128, batching="", metric="tpot_ms", value=9.0,
               software="vLLM 0.8", source="constructed")
    row.update(changes)
    path = tmp_path / "rows.csv"
    path.write_text(head + "\n" + ",".join(str(row[k]) for k in head.split(",")) + "\n")
    return path


def test_check_flags_a_throughput_beyond_the_physics_ceiling(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # 8 sequences of Llama 3.1 8B on one H100 cannot decode faster than 8 / 4.6 ms ~ 1,700 tokens/s;
    # a claim of 50,000 tokens/s is impossible as stated
    path = _published(tmp_path, metric="throughput_tokens_per_s", value=50000)
    assert check.main([str(path)]) == 1
    out = capsys.readouterr().out
    assert "IMPOSSIBLE" in out and "beats the physics ceiling" in out and "1 beat the physics floor" in out


def test_check_flags_a_unit_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # a TPOT of 9 ms written in seconds (0.009) under a _ms column is ~500x below the 4.6 ms floor
    path = _published(tmp_path, value=0.009)
    assert check.main([str(path)]) == 1
    assert "tpot_ms 0.009 ms beats the physics floor" in capsys.readouterr().out


def test_check_passes_a_plausible_row_and_a_marked_one(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert check.main([str(_published(tmp_path, value=9.0))]) == 0
    assert "0 beat the physics floor" in capsys.readouterr().out
    marked = _published(tmp_path, value=0.009)
    marked.write_text(marked.read_text().replace("source\n", "source,check\n").rstrip("\n") + ",unit: seconds\n")
    assert check.main([str(marked)]) == 0
    out = capsys.readouterr().out
    assert "marked (unit: seconds)" in out and "1 marked at the source" in out
    # validate leaves a marked row out, and says so
    skips: dict[str, int] = {}
    assert predictions(read_rows(marked), skips=skips) == [] and sum(skips.values()) == 1


def test_check_reads_measurement_lines(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The measure.py format: a decode step given in seconds is flagged."""
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"kind": "model_decode", "model": "llama_3.1_8b", "device": "NVIDIA H100 80GB HBM3",
                                "batch": 1, "context": 2048, "ms": 0.0062}) + "\n")
    assert check.main([str(path)]) == 1
    assert "tpot_ms 0.0062 ms beats the physics floor" in capsys.readouterr().out


def test_published_tables_and_gpu_measurements_have_no_unmarked_floor_violation(capsys: pytest.CaptureFixture
                                                                                 ) -> None:
    files = [*sorted(PUBLISHED.glob("*.csv")), *sorted(CALIBRATION_DIR.glob("*.jsonl"))]
    assert check.main(["--floors-only", *map(str, files)]) == 0
    assert " 0 beat the physics floor" in capsys.readouterr().out


@pytest.fixture(scope="module")
def all_residuals() -> list[residuals.Residual]:
    from tests.conftest import file_predictions

    files = [*sorted(PUBLISHED.glob("*.csv")), *sorted(CALIBRATION_DIR.glob("*.jsonl"))]
    return residuals.residuals([p for f in files for p in file_predictions(f)[0]])


#: Engines whose held-out coverage misses the 70-90% target today: vllm, above it. History: trtllm was 52% until a
#: source family weighed the square root of its rows in a band and a band held r = 1 (mantile/residuals.py rules 3 and
#: 4; trtllm_bench_untuned left this list then, 69% -> 80% of 59), then 69% (20 of 29: five of the nine NIM rows, r =
#: 0.92-0.98, lie below a band that only the two 2023 TensorRT-LLM families set for their regime), and 72% (21 of 29)
#: once MLA's q_a and kv_a projections ran as one GEMM (mantile/costs/mla.py): a physics change, not a band change,
#: which moved one held-out DeepSeek-R1 row (TensorRT-LLM 01c4ece, r 0.85 -> 0.92) inside its band. One row above the
#: line: the NIM and 2023 rows above are still outside. vllm went above the range (245 of 263, 93%) in stop 28, when
#: finite runs' queues drained (tests/test_accuracy.py, stop 28): GPUStack's median TTFT rows moved 40-60% short and
#: their spread widened the bands left out for each family beside them. Too wide, not too narrow: the bands stay honest
#: about the misses. Stop 30: 252 of 263 (96%) once ShareGPT runs drain (``output_dist``): GPUStack's throughput rows
#: came closer, its TTFT rows did not. SGLang went above it (80% -> 91%, stop 31) once the cookbook's random-dataset
#: runs drew uniform output lengths (``output_dist=uniform``; their median TTFT +24% -> -73%), and came back (87%) once
#: a pass outside CUDA graphs took its kernel launches' host time (``Scheduler.eager_launch_us``; that TTFT -73% ->
#: -45%). vLLM: 92% then (its bands are built beside SGLang's families too).
MISSED: set[str] = {"vllm"}
#: fewer held-out rows than this: coverage is not a percentage worth gating
MIN_ROWS = 10


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["pytorch", "sglang", "trtllm", "trtllm_bench", "trtllm_bench_untuned", "vllm",
                                    "all"])
def test_held_out_bands_cover_70_to_90_percent(engine: str, all_residuals: list[residuals.Residual]) -> None:
    cov = residuals.coverage(all_residuals)
    if engine == "all":
        inside, total = sum(v[0] for v in cov.values()), sum(v[1] for v in cov.values())
    else:
        inside, total = cov[engine]
    assert total >= MIN_ROWS
    if engine in MISSED:
        pytest.xfail(f"{engine}: {inside}/{total} inside the held-out band (target 70-90%)")
    assert residuals.COVERAGE_RANGE[0] <= inside / total <= residuals.COVERAGE_RANGE[1], f"{inside}/{total}"


def test_weighted_quantiles_count_each_family_once() -> None:
    import numpy as np

    # equal weights: Hazen positions (i - 0.5) / n; 4 values at 1/8, 3/8, 5/8, 7/8 -> the median is 2.5
    assert residuals.weighted_quantiles(np.array([4.0, 1.0, 3.0, 2.0]), np.ones(4), [0.5])[0] == pytest.approx(2.5)
    # one family of three rows at 0 and one of one row at 10, each weighing 1/2: positions 1/12, 3/12, 5/12
    # (weights 1/6 each) and 3/4 (weight 1/2); the median 0.5 lies 1/4 of the way from 5/12 to 3/4 -> 2.5
    values, weights = np.array([0.0, 0.0, 0.0, 10.0]), np.array([1 / 3, 1 / 3, 1 / 3, 1.0])
    assert residuals.weighted_quantiles(values, weights, [0.5])[0] == pytest.approx(2.5)


def test_a_band_holds_the_prediction_even_when_its_residuals_do_not() -> None:
    # every residual says the model is 20-40% fast (r > 1): the band still reaches down to r = 1
    rs = [residuals.Residual(("trtllm", "hopper", "fp8", "dense", "batch_size"), f"family{i % 2}", 1.2 + 0.02 * i)
          for i in range(10)]
    band = residuals.find(residuals.build(rs), rs[0].regime)
    assert band is not None and band.p10_ratio == 1.0 and band.p90_ratio > 1.35


def test_http_responses_carry_floor_and_band() -> None:
    import warnings

    from mantile.api.app import create_app
    from tests.api_server import BRIEF_SYSTEM_BODY

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from fastapi.testclient import TestClient
    body = json.loads(BRIEF_SYSTEM_BODY)
    with TestClient(create_app()) as client:
        one = client.post("/config/system-metrics", json=body).json()
        curve_body = {k: v for k, v in body.items() if k != "batch_size"}
        curve = client.post("/config/batch-curve", json={**curve_body, "batch_sizes": [1, 8]}).json()
    for row in (one, *curve["points"]):
        assert 0 < row["tpot_floor_ms"] <= row["tpot_p10_ms"] <= row["tpot_p90_ms"]
        assert row["tpot_floor_ms"] <= row["tpot_ms"] and row["ttft_floor_ms"] <= row["ttft_ms"]
        assert row["throughput_tokens_per_s"] <= row["throughput_ceiling_tokens_per_s"]
        assert row["throughput_p10_tokens_per_s"] <= row["throughput_p90_tokens_per_s"]
        assert "residuals" in row["band_basis"]


def test_layer_floor_is_the_layers_bytes_over_bandwidth() -> None:
    # Llama 3.1 8B feedforward, one decode token: 3 x 4096 x 14336 x 2 B = 352.3 MB of weights -> 0.1052 ms
    # at 3.35 TB/s (the activations of one token add ~0.1%)
    r = mantile.layer_metrics("llama_3.1_8b", "nvidia_h100_80gb", "feedforward", phase="decode", batch_size=1,
                              seq_length=1, kv_length=1)
    by_hand = 3 * 4096 * 14336 * 2 / H100_BW * 1e3
    assert by_hand <= r["latency_floor_ms"] <= by_hand * 1.002 and r["latency_floor_ms"] < r["latency_ms"]


def test_a_ttft_percentile_is_held_to_one_prompt_alone(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """256 prompts of 2048 tokens sent at once to Llama 3.1 8B on one H100: prefilling them all takes at
    least 256 x 2048 x 2 x 8.0e9 FLOPs / 989 TFLOPS = 8.5 s, so the mean TTFT's floor is seconds; one
    request's TTFT (a median) can be far lower: its own prompt alone needs 2048 x 2 x 8.0e9 / 989e12 = 33 ms.
    A 1 s median is possible; a 10 ms one is not."""
    head = "kind,model,hardware,dtype,tp,pp,dp,concurrency,num_requests,input_seq,output_seq,metric,value,source"
    line = "published,llama_3.1_8b,nvidia_h100_80gb,bf16,1,1,1,256,256,2048,128,{metric},{value},constructed"
    path = tmp_path / "rows.csv"
    path.write_text("\n".join([head, line.format(metric="ttft_ms", value=1000.0),
                               line.format(metric="ttft_p50_ms", value=1000.0),
                               line.format(metric="ttft_p50_ms", value=10.0)]) + "\n")
    assert check.main(["--floors-only", str(path)]) == 1
    out = capsys.readouterr().out
    assert "rows.csv:2: IMPOSSIBLE" in out  # the mean: below the burst's floor
    assert "rows.csv:3" not in out  # the median at 1 s: possible
    assert "rows.csv:4: IMPOSSIBLE" in out and "2 beat the physics floor" in out
    # a row whose load is a fixed batch takes the same per-request floor
    batch_row = head.replace("concurrency,num_requests", "batch") + "\n" + line.replace(",256,256,", ",8,").format(
        metric="ttft_p50_ms", value=1000.0) + "\n"
    path.write_text(batch_row)
    assert check.main(["--floors-only", str(path)]) == 0
    assert "checked 1 rows: 0 beat the physics floor" in capsys.readouterr().out
