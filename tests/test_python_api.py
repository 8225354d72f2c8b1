"""The Python API contract: estimate -> dict row, sweep -> DataFrame, layer_metrics -> dict; errors."""

from __future__ import annotations

import polars as pl
import pytest

import mantile
from mantile.specs import SpecError

CONTRACT = ("model_id hardware_id num_devices dtype kv_dtype tp pp dp ep cp sp batch_size input_seq output_seq "
            "ttft_ms tpot_ms e2e_latency_ms throughput_tokens_per_s throughput_tokens_per_s_per_device "
            "tokens_per_s_per_user weights_gb_per_device kv_cache_gb_per_device activation_gb_per_device "
            "memory_gb_per_device fits valid reason prefill_bound decode_bound").split()

BRIEF_LAYERS = {
    "attention": {"tensor_parallel": 8, "context_parallel": 1, "dtype": "bf16"},
    "feedforward": {"tensor_parallel": 8, "sequence_parallel": 1, "dtype": "bf16"},
    "norm": {"tensor_parallel": 1, "dtype": "bf16"},
    "embedding": {"tensor_parallel": 1, "dtype": "bf16"},
}


def test_estimate_returns_one_contract_row() -> None:
    r = mantile.estimate(model="llama_3.3_70b", hardware="nvidia_nvl72_rack", batch_size=1, input_seq=2048,
                         output_seq=128, tp=8)
    for key in CONTRACT:
        assert key in r, key
    assert r["valid"] and r["fits"] and r["reason"] is None and r["num_devices"] == 8


def test_sweep_crosses_lists() -> None:
    df = mantile.sweep(model=["llama_3.1_8b", "tinyllama_1.1b"], hardware="nvidia_h100_80gb", batch_size=[1, 8, 64],
                       input_seq=1024, output_seq=[16, 128], tp=[1, 2])
    assert isinstance(df, pl.DataFrame) and df.height == 2 * 3 * 2 * 2
    assert set(CONTRACT) <= set(df.columns)


def test_brief_per_layer_plan_is_accepted() -> None:
    r = mantile.estimate(model="llama_3.3_70b", hardware="nvidia_nvl72_rack", batch_size=1, input_seq=2048,
                         output_seq=128, layers=BRIEF_LAYERS)
    assert r["valid"] and r["tp"] == 8 and r["embedding_tp"] == 1
    # embedding tp=1: each device holds the whole embedding and LM head (2 * 128256 * 8192 * 2 B = 4.2 GB)
    sharded = mantile.estimate(model="llama_3.3_70b", hardware="nvidia_nvl72_rack", batch_size=1, input_seq=2048,
                               output_seq=128, tp=8)
    assert r["weights_gb_per_device"] - sharded["weights_gb_per_device"] == pytest.approx(
        2 * 128256 * 8192 * 2 * (1 - 1 / 8) / 1e9)


def test_per_layer_plan_errors_name_the_field() -> None:
    bad = {**BRIEF_LAYERS, "feedforward": {"tensor_parallel": 4, "sequence_parallel": 1}}
    with pytest.raises(SpecError, match="feedforward.tensor_parallel"):
        mantile.estimate(model="llama_3.3_70b", hardware="nvidia_nvl72_rack", batch_size=1, input_seq=2048,
                         output_seq=128, layers=bad)


def test_pipeline_and_tensor_parallel_together() -> None:
    r = mantile.estimate(model="llama_3.3_70b", hardware="nvidia_h100_80gb_x4", batch_size=16, input_seq=2048,
                         output_seq=256, tp=8, pp=2)
    assert r["valid"] and r["num_devices"] == 16
    single = mantile.estimate(model="llama_3.3_70b", hardware="nvidia_h100_80gb_x4", batch_size=16,
                              input_seq=2048, output_seq=256, tp=8)
    # pp halves the layers (and weights) per device; latency does not drop (stages run in sequence)
    assert r["weights_gb_per_device"] < 0.55 * single["weights_gb_per_device"]
    assert r["tpot_ms"] >= 0.9 * single["tpot_ms"]


def test_bad_arguments_raise_before_work() -> None:
    with pytest.raises(SpecError, match="batch_size"):
        mantile.estimate(model="llama_3.1_8b", hardware="nvidia_h100_80gb", batch_size=0, input_seq=1, output_seq=1)
    with pytest.raises(SpecError, match="dtype.*bf16"):
        mantile.estimate(model="llama_3.1_8b", hardware="nvidia_h100_80gb", batch_size=1, input_seq=1, output_seq=1,
                         dtype="bf15")
    with pytest.raises(SpecError, match="layer_type"):
        mantile.layer_metrics(model="llama_3.1_8b", hardware="nvidia_h100_80gb", layer_type="mlp")
    with pytest.raises(SpecError, match="tp"):
        mantile.layer_metrics(model="llama_3.1_8b", hardware="nvidia_h100_80gb", layer_type="attention", tp=3)


def test_context_longer_than_the_model_is_invalid() -> None:
    r = mantile.estimate(model="tinyllama_1.1b", hardware="nvidia_h100_80gb", batch_size=1, input_seq=4096,
                         output_seq=16)
    assert not r["valid"] and "max_position_embeddings (2048)" in r["reason"]


def test_fp8_on_a100_is_invalid_with_the_available_dtypes() -> None:
    r = mantile.estimate(model="llama_3.1_8b", hardware="nvidia_a100_80gb", batch_size=1, input_seq=128,
                         output_seq=16, dtype="fp8")
    assert not r["valid"] and "bf16" in r["reason"]


@pytest.mark.parametrize("kwargs,field", [
    (dict(tp=None), "tp"), (dict(layers={"attention": 8}), "attention"), (dict(embedding_tp=0), "embedding_tp"),
    (dict(memory_reserve_fraction=2), "memory_reserve_fraction"), (dict(max_prefill_tokens=-5), "max_prefill_tokens"),
    (dict(batching="dynamic"), "batching"), (dict(max_num_seqs=0), "max_num_seqs"),
    (dict(max_num_batched_tokens=2.5), "max_num_batched_tokens"),
])
def test_estimate_rejects_malformed_arguments_by_name(kwargs, field) -> None:
    with pytest.raises(SpecError, match=f"field '{field}'"):
        mantile.estimate(model="llama_3.1_8b", hardware="nvidia_h100_80gb", batch_size=1, input_seq=128,
                         output_seq=8, **kwargs)


@pytest.mark.parametrize("kwargs,field,text", [
    (dict(cp=64, seq_length=64), "cp", "at least 128 tokens per device"),
    (dict(phase="decode", kv_length=0), "kv_length", "positive integer"),
    (dict(tp=16, cp=2), "tp", "8 devices"),
    (dict(sp=2), "sp", "1 or tp (1)"),
    (dict(seq_length=200_000), "seq_length", "max_position_embeddings (131072)"),
])
def test_layer_metrics_uses_the_cost_models_plan_checks(kwargs, field, text) -> None:
    with pytest.raises(SpecError, match=f"field '{field}'") as e:
        mantile.layer_metrics(model="llama_3.1_8b", hardware="nvidia_h100_80gb", layer_type="attention", **kwargs)
    assert text in str(e.value)


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (a != a and b != b) or abs(a - b) <= 1e-12 * max(abs(a), abs(b))
    return a == b


@pytest.mark.parametrize("point", [
    dict(batch_size=8, input_seq=1024, output_seq=128, tp=8),  # valid, fits
    dict(batch_size=4096, input_seq=8192, output_seq=1024, tp=1),  # valid, does not fit
    dict(batch_size=1, input_seq=512, output_seq=64, tp=3),  # invalid plan
    dict(batch_size=16, input_seq=2048, output_seq=256, tp=4, pp=2, kv_dtype="fp8", dtype="fp8"),
])
@pytest.mark.parametrize("batching", ["static", "continuous"])
def test_estimate_fast_path_equals_the_sweep_row(point: dict, batching: str) -> None:
    """estimate() builds its row without the table builder; it must equal the sweep's row exactly."""
    est = mantile.estimate("llama_3.3_70b", "nvidia_h100_80gb", batching=batching, **point)
    row = mantile.sweep("llama_3.3_70b", "nvidia_h100_80gb", batching=batching, **point).row(0, named=True)
    assert list(est) == list(row)
    differ = {k: (est[k], row[k]) for k in row if not _same(est[k], None if row[k] != row[k] else row[k])
              and not (est[k] is None and row[k] is None)}
    assert not differ


@pytest.mark.parametrize("model,hardware,point", [
    ("deepseek_v3", "nvidia_h200_141gb", dict(concurrency=64, input_seq=2048, output_seq=512, tp=8, ep=8,
                                               dp_attention=True, serving="sglang", dtype="fp8")),
    ("deepseek_v3", "nvidia_nvl72_rack", dict(request_rate=5.0, input_seq=1024, output_seq=256, tp=8, ep=32,
                                              dp_attention=True, serving="trtllm", redundant_experts=32,
                                              dtype="fp4", kv_dtype="fp8")),
    ("gpt_oss_120b", "nvidia_b200_180gb", dict(concurrency=256, input_seq=1024, output_seq=1024, tp=2,
                                               serving="vllm", dtype="bf16")),
    ("qwen3_235b_a22b", "nvidia_h100_80gb", dict(batch_size=32, input_seq=4096, output_seq=256, tp=8, ep=8,
                                                 dtype="fp8", serving="vllm", expert_imbalance=1.3)),
    ("llama_3.3_70b", "nvidia_h100_80gb", dict(request_rate=1e4, input_seq=1024, output_seq=128, tp=4,
                                               serving="vllm")),  # unsustainable
    ("llama_4_scout", "nvidia_h100_80gb", dict(concurrency=8, input_seq=16384, output_seq=128, tp=4, cp=2,
                                               serving="trtllm")),
    ("mixtral_8x22b", "amd_mi300x", dict(batch_size=64, input_seq=512, output_seq=512, tp=4, ep=2, pp=2,
                                         serving="pytorch")),
])
def test_estimate_scalar_path_equals_the_vectorized_sweep(model: str, hardware: str, point: dict) -> None:
    """estimate() runs one point on numpy scalars (0-d columns); the sweep on arrays. Same physics, same
    numbers to 1e-9 (relative), over MLA, MoE with wide expert parallelism, windows, every load key."""
    est = mantile.estimate(model, hardware, **point)
    row = mantile.sweep(model, hardware, **point).row(0, named=True)
    assert list(est) == list(row)
    differ = {k: (est[k], row[k]) for k in row
              if not (est[k] is None and (row[k] is None or row[k] != row[k]))  # estimate says None for NaN
              and not (isinstance(est[k], float) and isinstance(row[k], float)
                       and (abs(est[k] - row[k]) <= 1e-9 * max(abs(est[k]), abs(row[k])) or row[k] != row[k]))
              and est[k] != row[k]}
    assert not differ


@pytest.mark.parametrize("model,weights_dtype", [("deepseek_v3", "fp8"), ("gpt_oss_120b", "bf16"),
                                                 ("llama_3.3_70b", "bf16")])
def test_default_dtype_is_the_checkpoints_in_sweep_and_estimate(model: str, weights_dtype: str) -> None:
    """dtype=auto (the default everywhere): DeepSeek-V3 ships fp8 weights, GPT-OSS mxfp4 experts beside
    bf16 attention, Llama bf16; a sweep and estimate run the same format, and naming bf16 changes it."""
    kw = dict(hardware="nvidia_h200_141gb", tp=8, concurrency=16, input_seq=1024, output_seq=256)
    est = mantile.estimate(model, **kw)
    row = mantile.sweep(model, **kw).row(0, named=True)
    assert est["dtype"] == row["dtype"] == weights_dtype
    assert est["weights_gb_per_device"] == pytest.approx(row["weights_gb_per_device"], rel=1e-12)
    bf16 = mantile.sweep(model, dtype="bf16", **kw).row(0, named=True)
    if model == "llama_3.3_70b":
        assert bf16["weights_gb_per_device"] == row["weights_gb_per_device"]
    else:  # fp8 weights: ~1 byte a parameter; mxfp4 experts: ~0.53 (most of GPT-OSS is experts)
        assert row["weights_gb_per_device"] < 0.6 * bf16["weights_gb_per_device"]


def test_mxfp4_checkpoint_runs_weight_only_on_gpus_without_fp4() -> None:
    """GPT-OSS-120B's experts (36 layers x 128 x 3 x 2880 x 2880 = 114.7e9 params) ship in a 4-bit format;
    the rest (~2.1e9: attention, router, embeddings, LM head) in bf16. Hopper has no FP4 tensor cores, so
    the default recipe runs the experts weight-only (w4a16, 0.53125 B a value): 114.7 x 0.53125 + 2.1 x 2
    = 65 GB on one H100, where it used to be refused ("dtype has no peak"); on a B200 the experts stay
    MXFP4 (the checkpoint's bytes, W4A8 math): the same 65 GB, not NVFP4's 0.5625 B (68.7 GB)."""
    kw = dict(concurrency=8, input_seq=1024, output_seq=256)
    h100 = mantile.estimate("gpt_oss_120b", "nvidia_h100_80gb", **kw)
    b200 = mantile.estimate("gpt_oss_120b", "nvidia_b200_180gb", **kw)
    assert h100["valid"] and b200["valid"]
    assert h100["weights_gb_per_device"] == pytest.approx(65.0, rel=0.02)
    assert b200["weights_gb_per_device"] == pytest.approx(65.0, rel=0.02)
    with pytest.raises(SpecError, match="dtype"):  # naming fp4 on Hopper stays an error
        mantile.layer_metrics(model="gpt_oss_120b", hardware="nvidia_h100_80gb", layer_type="feedforward",
                              dtype="fp4")


def test_num_requests_is_checked_before_any_work() -> None:
    """A run's length is an integer >= 0 and belongs to a closed or open loop: a fixed running batch has
    none, so naming one there is an error naming the field, not a silent no-op."""
    kw = dict(input_seq=128, output_seq=128)
    with pytest.raises(SpecError, match="num_requests.*batch_size"):
        mantile.estimate("llama_3.1_8b", "nvidia_h100_80gb", batch_size=8, num_requests=10, **kw)
    with pytest.raises(SpecError, match="num_requests"):
        mantile.estimate("llama_3.1_8b", "nvidia_h100_80gb", concurrency=8, num_requests=-1, **kw)
    with pytest.raises(SpecError, match="num_requests"):
        mantile.sweep("llama_3.1_8b", "nvidia_h100_80gb", concurrency=8, num_requests=[10, 2.5], **kw)
    row = mantile.estimate("llama_3.1_8b", "nvidia_h100_80gb", concurrency=8, num_requests=80, **kw)
    assert row["num_requests"] == 80 and row["valid"]


def test_a_plan_keyword_beside_layers_must_agree() -> None:
    """``layers`` is the whole per-layer plan (tp from attention.tensor_parallel, 1 when not given): a tp=8
    beside a layers body that leaves tp at 1 is an error naming tp, not a silent TP1 estimate."""
    kw = dict(batch_size=4, input_seq=512, output_seq=64)
    with pytest.raises(SpecError) as e:
        mantile.estimate("llama_3.1_8b", "nvidia_h100_80gb_x4", tp=4, layers={"feedforward": {"dtype": "fp8"}}, **kw)
    assert e.value.field == "tp" and e.value.value == 4
    agree = mantile.estimate("llama_3.1_8b", "nvidia_h100_80gb_x4", tp=4,
                             layers={"attention": {"tensor_parallel": 4}}, **kw)
    assert agree["tp"] == 4


MANY_CALLS = [
    *[dict(model="llama_3.1_8b", hardware="nvidia_h100_80gb", batch_size=b, input_seq=s, output_seq=o)
      for b in (1, 8, 128) for s, o in ((512, 128), (4096, 512))],
    *[dict(model="deepseek_v3", hardware="nvidia_h200_141gb", concurrency=c, input_seq=2048, output_seq=512, tp=8,
           ep=8, dp_attention=True, serving="sglang", dtype="fp8") for c in (1, 256)],
    *[dict(model="llama_3.3_70b", hardware="nvidia_h100_80gb", request_rate=r, input_seq=1024, output_seq=128, tp=4)
      for r in (2.0, 1e4)],  # the second is unsustainable
    dict(model="llama_3.3_70b", hardware="nvidia_h100_80gb", batch_size=1, input_seq=512, output_seq=64, tp=3),
    dict(model="gpt_oss_120b", hardware="nvidia_b200_180gb", concurrency=64, input_seq=1024, output_seq=1024,
         serving="trtllm", breakdown=False),  # a group of one: estimate's own path
]


def _close(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-9 * max(abs(a), abs(b))
    return a == b


def test_estimate_many_gives_each_call_its_own_estimate_row() -> None:
    """Calls that share a model, hardware and profile run as the columns of one evaluation; every row is
    still ``estimate(**call)``'s (same keys in the same order, numbers to 1e-9), in the calls' order."""
    rows = mantile.estimate_many(MANY_CALLS)
    assert len(rows) == len(MANY_CALLS)
    for call, row in zip(MANY_CALLS, rows, strict=True):
        one = mantile.estimate(**call)
        assert list(row) == list(one)
        differ = {k: (row[k], one[k]) for k in one if not _close(row[k], one[k])}
        assert not differ, (call, differ)
    assert rows[-1] == mantile.estimate(**MANY_CALLS[-1])  # alone in its group: exactly estimate's
    assert rows[10]["valid"] is False and rows[10]["invalid_field"] == "tp"  # tp=3 of 64 heads
    assert rows[9]["valid"] is False and rows[8]["valid"] is True  # 1e4 requests/s is beyond the replica
    assert rows[0]["batch_size"] == 1 and rows[5]["batch_size"] == 128 and rows[5]["input_seq"] == 4096


def test_estimate_many_errors_are_per_call() -> None:
    """A bad call is its own SpecError (the first one raised by default; with errors='return' in its slot,
    the other calls answered); an unknown keyword names itself and the valid ones."""
    calls = [MANY_CALLS[0], dict(MANY_CALLS[0], model="no_such_model"), dict(MANY_CALLS[0], tpp=2), MANY_CALLS[1]]
    out = mantile.estimate_many(calls, errors="return")
    assert out[0] == mantile.estimate(**MANY_CALLS[0]) and out[3] == mantile.estimate(**MANY_CALLS[1])
    assert isinstance(out[1], SpecError) and out[1].field == "model"
    assert isinstance(out[2], SpecError) and out[2].field == "tpp" and "input_seq" in str(out[2])
    with pytest.raises(SpecError, match="no_such_model"):
        mantile.estimate_many(calls)
    with pytest.raises(SpecError, match="hardware"):
        mantile.estimate_many([dict(model="llama_3.1_8b", batch_size=1, input_seq=8, output_seq=8)])
    with pytest.raises(SpecError, match="errors"):
        mantile.estimate_many(calls, errors="ignore")
    assert mantile.estimate_many([]) == []


# ---- the engine's launch limits -----------------------------------------------------------------------
LIMITS_POINT = dict(model="llama_3.1_8b", hardware="nvidia_h100_80gb", serving="vllm", input_seq=1024, output_seq=256)


def test_a_stated_running_cap_makes_the_other_clients_wait() -> None:
    # 64 clients, 16 slots: the 16 running see the times of a 16-client loop; each of the others waits
    # (64 - 16) / 16 = 3 request lifetimes on average (Little's law: serving/queueing.py)
    free = mantile.estimate(**LIMITS_POINT, concurrency=16)
    capped = mantile.estimate(**LIMITS_POINT, concurrency=64, max_num_seqs=16)
    assert capped["running_batch"] == 16 and free["running_batch"] == 16
    assert capped["tpot_ms"] == pytest.approx(free["tpot_ms"], rel=1e-9)
    lifetime = free["ttft_ms"] + (256 - 1) * free["tpot_ms"]
    assert capped["ttft_ms"] == pytest.approx(free["ttft_ms"] + 3 * lifetime, rel=1e-9)
    # without the stated cap vLLM's default (1024 sequences on an 80 GB GPU) lets all 64 run
    assert mantile.estimate(**LIMITS_POINT, concurrency=64)["running_batch"] == 64


def test_stated_limits_replace_the_engines_per_device_defaults() -> None:
    # vLLM caps an A100 at 256 sequences (conf/serving/vllm.yaml device_rules); a stated cap wins there
    point = {**LIMITS_POINT, "hardware": "nvidia_a100_80gb", "input_seq": 128, "output_seq": 128, "concurrency": 512}
    assert mantile.estimate(**point)["running_batch"] == 256
    assert mantile.estimate(**point, max_num_seqs=512)["running_batch"] == 512
    assert mantile.sweep(**point, max_num_seqs=512)["running_batch"].to_list() == [512.0]


def test_a_smaller_token_budget_chunks_a_long_prompt() -> None:
    # one 8192-token prompt alone: in 2048-token chunks it takes four steps, each reading all the weights
    # again (and the later chunks attend to the earlier ones), so its first token comes later
    alone = {**LIMITS_POINT, "input_seq": 8192, "concurrency": 1}
    whole = mantile.estimate(**alone)
    chunked = mantile.estimate(**alone, max_num_batched_tokens=2048)
    assert chunked["ttft_ms"] > whole["ttft_ms"]


def test_calls_stating_the_same_limits_share_one_profile_and_one_evaluation() -> None:
    # resolve_serving builds a profile once per id and overrides, so estimate_many groups such calls
    from mantile.engine.spec import resolve_serving
    from mantile.estimator import _arguments, _prepare

    assert resolve_serving("vllm", max_num_seqs=16) is resolve_serving("vllm", max_num_seqs=16, batching=None)
    assert resolve_serving("vllm", max_num_seqs=16) is not resolve_serving("vllm", max_num_seqs=32)
    calls = [{**LIMITS_POINT, "concurrency": c, "max_num_seqs": 16} for c in (8, 64)]
    a, b = (_prepare(_arguments(c)) for c in calls)
    assert a.group() == b.group()
    rows = mantile.estimate_many(calls)
    for call, row in zip(calls, rows, strict=True):
        assert row["ttft_ms"] == pytest.approx(mantile.estimate(**call)["ttft_ms"], rel=1e-9)


def test_exponential_outputs_end_a_finite_run_with_its_drain_at_every_front_door() -> None:
    """``output_dist="exponential"``, where the KV cache does not bind (456-token sequences on an 8B model):
    256 clients sending their 1,000 prompts at once end with the longest outputs draining at ever smaller
    batches, so the run's throughput is lower than with every output the mean length; 64 clients in a steady
    closed loop send their prompts one at a time as their requests end, not in groups, so the mean TTFT is
    shorter; the per-step breakdown does not move; a sweep's rows are estimate's; a bad value is refused
    naming the field and the choices."""
    kw = dict(model="llama_3.1_8b", hardware="nvidia_h100_80gb", serving="vllm", concurrency=256,
              num_requests=1000, input_seq=256, output_seq=200)
    fixed, varied = mantile.estimate(**kw), mantile.estimate(**kw, output_dist="exponential")
    assert (fixed["output_dist"], varied["output_dist"]) == ("fixed", "exponential")
    assert fixed["running_batch"] == varied["running_batch"] == 256 < fixed["max_batch_size"] * 0.5
    assert varied["throughput_tokens_per_s"] < 0.95 * fixed["throughput_tokens_per_s"]
    assert varied["throughput_ceiling_tokens_per_s"] < fixed["throughput_ceiling_tokens_per_s"]  # the floor drains too
    for key in ("decode_feedforward_ms", "prefill_attention_ms", "tpot_floor_ms"):
        assert varied[key] == fixed[key], key
    steady = dict(kw, concurrency=64, num_requests=0)
    apart, grouped = mantile.estimate(**steady, output_dist="exponential"), mantile.estimate(**steady)
    assert apart["ttft_ms"] < 0.5 * grouped["ttft_ms"]
    df = mantile.sweep(**kw, output_dist=["fixed", "exponential"])
    for row, one in zip(df.sort("output_dist").to_dicts(), (fixed, varied), strict=True):
        for key in ("throughput_tokens_per_s", "ttft_ms", "tpot_ms"):
            assert row[key] == pytest.approx(one[key], rel=1e-9), key
    with pytest.raises(SpecError, match="output_dist.*'fixed', 'exponential'"):
        mantile.estimate(**kw, output_dist="lognormal")


def test_exponential_outputs_hold_a_whole_mean_output_of_kv_per_running_sequence() -> None:
    """Paged KV blocks grow with a sequence, so a running sequence holds its prompt and its age: O / 2 on
    average with fixed lengths, and with exponential ones the whole mean O (a sequence seen running is
    length-biased: E[L^2] / (2 E[L]) = O). Qwen3-32B in bf16 on one H100 (KV-bound, vLLM), 217 in / 201 out:
    the KV per running sequence rises by (217 + 201) / (217 + 100.5) = 1.3165, so fewer run at once, in the
    steady state too."""
    kw = dict(model="qwen3_32b", hardware="nvidia_h100_80gb", serving="vllm", dtype="bf16", concurrency=1000,
              input_seq=217, output_seq=201)
    fixed, varied = mantile.estimate(**kw), mantile.estimate(**kw, output_dist="exponential")
    per_seq = [r["kv_cache_gb_per_device"] / r["running_batch"] for r in (fixed, varied)]
    assert per_seq[1] / per_seq[0] == pytest.approx(418 / 317.5, rel=1e-9)
    assert varied["running_batch"] == varied["max_batch_size"] < fixed["running_batch"] == fixed["max_batch_size"]
    assert varied["throughput_tokens_per_s"] < fixed["throughput_tokens_per_s"]
    # uniform from none to 2 O: E[L^2] / (2 E[L]) = (4 O^2 / 3) / (2 O) = 2 O / 3 = 134 of the 201 tokens
    uniform = mantile.estimate(**kw, output_dist="uniform")
    assert uniform["kv_cache_gb_per_device"] / uniform["running_batch"] / per_seq[0] == pytest.approx(
        (217 + 134) / 317.5, rel=1e-9)
    assert varied["running_batch"] < uniform["running_batch"] < fixed["running_batch"]


def test_validate_runs_sharegpt_rows_with_exponential_outputs() -> None:
    """A published row over ShareGPT (real conversations) is estimated with exponential output lengths about
    its mean, one whose random dataset drew each request's lengths (SGLang's, no range ratio) with uniform
    ones; a row over another synthetic dataset keeps them fixed."""
    from mantile.validate import predictions

    row = dict(kind="published", model="llama_3.1_8b", hardware="nvidia_h100_80gb", dtype="bf16", tp=1,
               input_seq=256, output_seq=200, metric="throughput_tokens_per_s", value=1000.0, serving="vllm",
               source="constructed", concurrency=1000, num_requests=1000)
    kw = dict(model="llama_3.1_8b", hardware="nvidia_h100_80gb", serving="vllm", dtype="bf16", concurrency=1000,
              num_requests=1000, input_seq=256, output_seq=200, enforce_max_position=False)
    shared, = predictions([{**row, "dataset": "ShareGPT (vllm bench serve --dataset-name sharegpt)"}])
    synthetic, = predictions([{**row, "dataset": "random"}])
    drawn, = predictions([{**row, "dataset": "random (--random-input-len 512 --random-output-len 400, no "
                                             "--random-range-ratio: lengths drawn per request; means from totals)"}])
    assert shared.predicted == pytest.approx(
        mantile.estimate(**kw, output_dist="exponential")["throughput_tokens_per_s"], rel=1e-9)
    assert synthetic.predicted == pytest.approx(mantile.estimate(**kw)["throughput_tokens_per_s"], rel=1e-9)
    assert drawn.predicted == pytest.approx(
        mantile.estimate(**kw, output_dist="uniform")["throughput_tokens_per_s"], rel=1e-9)
    assert len({shared.predicted, synthetic.predicted, drawn.predicted}) == 3


def test_a_no_evict_scheduler_reserves_a_length_biased_output_with_exponential_outputs() -> None:
    """TensorRT-LLM reserves a request's whole output when it admits it (``kv_reserve: full``): with exponential
    lengths the requests seen running are length-biased, E[L^2] / E[L] = 2 O, so the KV held per running
    sequence goes from 217 + 201 to 217 + 402 tokens (x 619 / 418); static batching keeps its fixed lengths."""
    kw = dict(model="qwen3_32b", hardware="nvidia_h100_80gb", serving="trtllm", dtype="bf16", concurrency=1000,
              input_seq=217, output_seq=201)
    fixed, varied = mantile.estimate(**kw), mantile.estimate(**kw, output_dist="exponential")
    per_seq = [r["kv_cache_gb_per_device"] / r["running_batch"] for r in (fixed, varied)]
    assert per_seq[1] / per_seq[0] == pytest.approx(619 / 418, rel=1e-9)
    uniform = mantile.estimate(**kw, output_dist="uniform")  # E[L^2] / E[L] = 4 O / 3 = 268 tokens
    assert uniform["kv_cache_gb_per_device"] / uniform["running_batch"] / per_seq[0] == pytest.approx(
        (217 + 268) / 418, rel=1e-9)
    static = dict(kw, serving="pytorch", batching="static", batch_size=8)
    del static["concurrency"]
    assert mantile.estimate(**static, output_dist="exponential")["kv_cache_gb_per_device"] == \
        mantile.estimate(**static)["kv_cache_gb_per_device"]
