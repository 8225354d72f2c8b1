"""Speculative decoding and prefix caching: hand-derived expectations, bad input, every front door.

Small model and one GPU (Llama 3.1 8B on an H100, the plain PyTorch profile unless said), so every
expectation can be checked with a calculator.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

import mantile
from mantile.api.app import create_app
from mantile.engine.spec import make_spec
from mantile.serving.system import step_kernels
from mantile.specs import SpecError, load_model
from mantile.specs.speculative import METHODS, defaults, tokens_from_rates, tokens_per_step
from mantile.validate import SPEC_WITHIN_PCT, predictions, read_rows, speculative_summary
from tests.api_server import BRIEF_SYSTEM_BODY
from tests.conftest import REPO

with warnings.catch_warnings():  # starlette suggests httpx2, which this project does not use
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

BASE = dict(model="llama_3.1_8b", hardware="nvidia_h100_80gb", input_seq=1024, output_seq=256, serving="pytorch")


def est(**kw: Any) -> dict[str, Any]:
    return mantile.estimate(**{**BASE, **kw})


# ---- tokens per verify step ------------------------------------------------------------------------
def test_tokens_per_step_by_hand() -> None:
    # one rate a = 0.8 at every position, k = 3: 1 + 0.8 + 0.64 + 0.512 = 2.952
    assert tokens_per_step(np.asarray(0.8), np.asarray(3.0), np.asarray(0.5)) == pytest.approx(2.952)
    # 0 takes the default rate 0.5: 1 + 0.5 + 0.25 = 1.75 for k = 2
    assert tokens_per_step(np.asarray(0.0), np.asarray(2.0), np.asarray(0.5)) == pytest.approx(1.75)
    # >= 1 is the mean acceptance length itself
    assert tokens_per_step(np.asarray(2.44), np.asarray(4.0), np.asarray(0.5)) == pytest.approx(2.44)
    # per-position rates: 1 + 0.9 + 0.9*0.5 + 0.9*0.5*0.2 = 2.44 (the 4th rate is not used with k = 3)
    assert tokens_from_rates([0.9, 0.5, 0.2, 0.99], 3) == pytest.approx(2.44)


def test_every_method_has_a_sourced_default() -> None:
    table = defaults()
    assert set(table) == set(METHODS) - {"none"}
    assert all(d.source and 0 < d.acceptance_rate < 1 for d in table.values())
    # DeepSeek-V3 report: 85-90% acceptance of the second token
    assert 0.85 <= table["mtp"].acceptance_rate <= 0.90


def test_row_reports_tokens_per_step() -> None:
    assert est(batch_size=1)["spec_tokens_per_step"] == 1.0
    r = est(batch_size=1, spec_method="ngram", spec_num_tokens=2, spec_acceptance=0.5)
    assert r["spec_tokens_per_step"] == pytest.approx(1.75)
    r = est(batch_size=1, spec_method="ngram", spec_num_tokens=3, spec_acceptance=[0.9, 0.5, 0.2])
    assert r["spec_tokens_per_step"] == pytest.approx(2.44)


# ---- the verify step ---------------------------------------------------------------------------------
def test_verify_step_is_k_plus_1_tokens_and_memory_bound_at_batch_1() -> None:
    """k = 3: the verify pass multiplies 4 tokens per sequence through every GEMM, attention and the LM
    head, so its FLOPs are 4x a plain step's; at batch 1 it stays memory bound (the weights are read once
    either way), so it costs about one plain step and TPOT falls by about the tokens per step (2.0)."""
    plain = est(batch_size=1)
    spec = est(batch_size=1, spec_method="ngram", spec_num_tokens=3, spec_acceptance=2.0)
    assert spec["decode_flops"] / plain["decode_flops"] == pytest.approx(4.0, rel=0.01)
    assert spec["decode_bound"] == "memory"
    verify_ms = spec["tpot_ms"] * 2.0  # TPOT = verify step / tokens per step (n-gram drafts on the host)
    assert verify_ms / plain["tpot_ms"] == pytest.approx(1.0, abs=0.1)
    assert 1.8 < plain["tpot_ms"] / spec["tpot_ms"] <= 2.0
    assert spec["decode_draft_ms"] == 0.0


def test_no_gain_when_compute_bound() -> None:
    """At batch 512 the plain decode step is near compute bound: a 4-token verify costs about 4x, and 1.5
    tokens per step cannot pay for it."""
    plain = est(batch_size=512)
    spec = est(batch_size=512, spec_method="ngram", spec_num_tokens=3, spec_acceptance=1.5)
    assert spec["decode_bound"] == "compute"
    assert spec["tpot_ms"] > plain["tpot_ms"]


def test_nothing_accepted_never_helps() -> None:
    """Acceptance length 1 (no draft accepted): every step yields one token and costs a verify pass."""
    plain = est(batch_size=8)
    for method in ("ngram", "eagle"):
        assert est(batch_size=8, spec_method=method, spec_num_tokens=1, spec_acceptance=1.0)["tpot_ms"] \
            >= plain["tpot_ms"]


def test_eagle_draft_cost_is_k_layers_and_lm_heads() -> None:
    """EAGLE: per draft token one decoder layer (attention, MLP, 2 norms), the 2h->h fc and the LM head
    at batch 1 over the mean cache (1024 + 256/2 = 1152 keys): k = 3 of them, from layer_metrics."""
    k, ctx = 3, 1024 + 128
    layer = sum(mantile.layer_metrics(model="llama_3.1_8b", hardware="nvidia_h100_80gb", layer_type=t,
                                      phase="decode", batch_size=1, seq_length=1, kv_length=ctx,
                                      serving="pytorch")["latency_ms"] * n
                for t, n in (("attention", 1), ("feedforward", 1), ("norm", 2), ("embedding", 1)))
    r = est(batch_size=1, spec_method="eagle", spec_num_tokens=k, spec_acceptance=2.5)
    # the fc (h x 2h, 33.5M parameters = 67 MB) adds about 0.03 ms per pass on 3.35 TB/s
    assert r["decode_draft_ms"] == pytest.approx(k * layer, rel=0.1)
    assert r["decode_draft_ms"] > k * layer


def test_draft_kernels_sum_to_the_draft_time() -> None:
    spec = make_spec("llama_3.1_8b", "nvidia_h100_80gb", {"batch_size": 4, "input_seq": 1024, "output_seq": 256},
                     "pytorch", draft_model="llama_3.2_1b")
    system, model = next(iter(spec.systems.values())), next(iter(spec.models.values()))
    for method in ("eagle", "draft"):
        point = dict(batch_size=4, input_seq=1024, output_seq=256, tp=1, pp=1, dp=1, ep=1, cp=1, sp=1, dtype="bf16",
                     spec_method=method, spec_num_tokens=3, spec_acceptance=0.0)
        rows = step_kernels(model, system.spec, system.eff, spec.serving, point)
        shown = sum(r["total_ms"] for r in rows if r["phase"] == "draft")
        row = est(batch_size=4, spec_method=method, spec_num_tokens=3, spec_draft_model="llama_3.2_1b")
        assert shown == pytest.approx(row["decode_draft_ms"], rel=1e-9), method


def test_drafter_weights() -> None:
    h, kv, f = 4096, 1024, 14336  # Llama 3.1 8B
    plain = est(batch_size=1)
    eagle = est(batch_size=1, spec_method="eagle", spec_num_tokens=3)
    # one layer: q, o (h x h each), k, v (h x 1024 each), gate/up/down (3 h f), fc (2h x h), 4 norms of h
    params = 2 * h * h + 2 * h * kv + 3 * h * f + 2 * h * h + 4 * h
    assert (eagle["weights_gb_per_device"] - plain["weights_gb_per_device"]) * 1e9 == pytest.approx(params * 2.0,
                                                                                                     rel=1e-3)
    draft = est(batch_size=1, spec_method="draft", spec_num_tokens=3, spec_draft_model="llama_3.2_1b")
    small = mantile.estimate(model="llama_3.2_1b", hardware="nvidia_h100_80gb", batch_size=1, input_seq=1024,
                             output_seq=256, serving="pytorch")
    assert draft["weights_gb_per_device"] == pytest.approx(plain["weights_gb_per_device"]
                                                           + small["weights_gb_per_device"], rel=1e-9)


def test_draft_model_kv_cache() -> None:
    """Per held token: the 8B keeps 32 layers x 2 x 8 kv heads x 128 = 65,536 values, the 1B drafter
    16 x 2 x 8 x 64 = 16,384: x 1.25; a speculating sequence also holds its k = 3 draft tokens."""
    plain = est(batch_size=4)
    draft = est(batch_size=4, spec_method="draft", spec_num_tokens=3, spec_draft_model="llama_3.2_1b")
    held = 1024 + 256  # static batching holds input + output
    assert draft["kv_cache_gb_per_device"] / plain["kv_cache_gb_per_device"] == pytest.approx(
        1.25 * (held + 3) / held, rel=1e-6)


def test_mtp_uses_the_models_own_modules() -> None:
    """DeepSeek-R1 ships one MTP module (11.61B parameters, tests/test_models.py), which engines load only
    to speculate with it: MTP adds its weights, about 11.61e9 x 0.5625 B (fp4) / 8 GPUs = 0.82 GB a GPU
    (the replicated router and 16-bit norms and projection a little more), the module's (MLA latent)
    cache per sequence and its passes per step."""
    kw = dict(model="deepseek_r1", hardware="nvidia_b200_180gb", tp=8, dtype="fp4", input_seq=1024,
              output_seq=2048, concurrency=1, serving="trtllm_bench")
    plain, mtp = mantile.estimate(**kw), mantile.estimate(**kw, spec_method="mtp", spec_num_tokens=3,
                                                          spec_acceptance=2.82)
    assert mtp["weights_gb_per_device"] - plain["weights_gb_per_device"] == pytest.approx(0.82, rel=0.1)
    assert mtp["decode_draft_ms"] > 0
    # 61 layers + 1 MTP module keep latents; at batch 1 the cache grows by about 1/61 (+3 draft tokens)
    assert mtp["kv_cache_gb_per_device"] > plain["kv_cache_gb_per_device"] * (1 + 1 / 61)
    assert 2.0 < mtp["throughput_tokens_per_s"] / plain["throughput_tokens_per_s"] < 2.82


def test_scheduler_budget_counts_k_plus_1_tokens() -> None:
    """vLLM's 8192-token step budget with 4096-token prompts and 256 outputs runs at most
    floor(8192 / (1 + 4096/256)) = 481 sequences; speculating with k = 3 at 2.0 tokens per step:
    floor(8192 / (4 + 4096 / (255/2 + 1))) = floor(8192 / 35.875...) = 228."""
    kw = dict(model="llama_3.2_1b", hardware="nvidia_h200_141gb", input_seq=4096, output_seq=256,
              concurrency=4000, serving="vllm")
    assert mantile.estimate(**kw)["running_batch"] == 481
    spec = mantile.estimate(**kw, spec_method="ngram", spec_num_tokens=3, spec_acceptance=2.0)
    assert spec["running_batch"] == int(8192 // (4 + 4096 / (255 / 2 + 1)))


def test_kv_capacity_counts_the_drafter() -> None:
    """vLLM on one H100 (0.9 x 85.5 GB = 76.9 GB usable), 32768/1024 tokens, many clients: the running batch
    is what the KV cache holds. Per sequence (input + output/2 = 33,280 tokens held): the 8B keeps 131,072
    bytes per token (4.362 GB); with a 1B draft model 131,072 + 32,768 bytes per token over 33,283 tokens
    (3 draft tokens) = 5.453 GB, and the drafter's 2.47 GB of weights come off the free memory. The
    prefill activations of one 8192-token step take under 1 GB, so the batch is
    floor((usable - weights - [0, 1] GB) / per sequence) either way: 13 and 10."""
    kw = dict(model="llama_3.1_8b", hardware="nvidia_h100_80gb", input_seq=32768, output_seq=1024, concurrency=4000,
              serving="vllm")
    plain = mantile.estimate(**kw)
    draft = mantile.estimate(**kw, spec_method="draft", spec_num_tokens=3, spec_draft_model="llama_3.2_1b")
    for row, per_token, held in ((plain, 131072, 33280), (draft, 131072 + 32768, 33283)):
        free = (row["usable_memory_gb_per_device"] - row["weights_gb_per_device"]) * 1e9
        per_seq = per_token * held
        assert int(free // per_seq) == int((free - 1e9) // per_seq) == row["running_batch"]
    assert (plain["running_batch"], draft["running_batch"]) == (13, 10)


# ---- prefix caching ----------------------------------------------------------------------------------
def test_prefix_hit_rate_zero_is_no_cache() -> None:
    a, b = est(batch_size=2, input_seq=4096), est(batch_size=2, input_seq=4096, prefix_cache_hit_rate=0.0)
    assert a == b


def test_prefix_full_hit_computes_one_token() -> None:
    """A full hit still prefills the last prompt token (its logits give the first output token): the
    prefill is one token over the 4096 cached keys, about one decode step, not a 4096-token prefill."""
    full = est(batch_size=1, input_seq=4096, prefix_cache_hit_rate=1.0)
    none = est(batch_size=1, input_seq=4096)
    one_token = est(batch_size=1, input_seq=4096, output_seq=2)
    assert full["ttft_ms"] < 0.1 * none["ttft_ms"]
    # linear layers: 2 x 8.0e9 parameters' worth of FLOPs for one token (plus attention over 4096 keys)
    assert 1.5e10 < full["prefill_flops"] < 2.0e10
    assert full["ttft_ms"] == pytest.approx(one_token["tpot_ms"], rel=0.3)
    assert full["kv_cache_gb_per_device"] == none["kv_cache_gb_per_device"]  # cached blocks are held


def test_prefix_half_hit_reads_the_cached_keys() -> None:
    """h = 0.5 of 4096: linear FLOPs halve; attention FLOPs are 2048 queries over 4096 - 2047/2 keys on
    average = 0.75 of a whole prompt's (4096 queries over 2048.5 keys), so the total ratio lies strictly
    between 0.5 and 0.75 (0.5 x linear + 0.75 x attention over linear + attention)."""
    half = est(batch_size=1, input_seq=4096, prefix_cache_hit_rate=0.5)
    none = est(batch_size=1, input_seq=4096)
    ratio = half["prefill_flops"] / none["prefill_flops"]
    assert 0.5 < ratio < 0.75


# ---- bad input -----------------------------------------------------------------------------------------
def test_bad_speculation_input_is_an_error_naming_the_field() -> None:
    with pytest.raises(SpecError, match="spec_num_tokens") as e:
        est(batch_size=1, spec_method="mtp", spec_num_tokens=0)
    assert "integer >= 1" in str(e.value)
    with pytest.raises(SpecError, match="spec_method") as e:
        est(batch_size=1, spec_method="medusa", spec_num_tokens=2)
    assert all(m in str(e.value) for m in METHODS)
    with pytest.raises(SpecError, match="spec_draft_model") as e:
        est(batch_size=1, spec_method="draft", spec_num_tokens=2, spec_draft_model="llama_0b")
    assert "llama_3.2_1b" in str(e.value)
    with pytest.raises(SpecError, match="prefix_cache_hit_rate"):
        est(batch_size=1, prefix_cache_hit_rate=1.5)
    with pytest.raises(SpecError, match="spec_acceptance"):
        est(batch_size=1, spec_method="eagle", spec_num_tokens=3, spec_acceptance=[0.9, 0.8])


@pytest.mark.parametrize("kw,field", [
    (dict(spec_method="mtp", spec_num_tokens=2), "spec_method"),  # Llama has no MTP modules
    (dict(spec_method="eagle", spec_num_tokens=2, spec_acceptance=3.5), "spec_acceptance"),  # > k + 1
    (dict(spec_method="draft", spec_num_tokens=2), "spec_draft_model"),  # no draft model named
])
def test_impossible_speculation_is_an_invalid_row(kw: dict[str, Any], field: str) -> None:
    r = est(batch_size=1, **kw)
    assert r["valid"] is False and r["invalid_field"] == field and r["tpot_ms"] is None
    assert field.split("_")[0] in r["reason"]


# ---- front doors ---------------------------------------------------------------------------------------
def test_sweep_crosses_speculation_axes_like_estimate() -> None:
    df = mantile.sweep(**BASE, batch_size=[1, 16], spec_method=["none", "ngram", "eagle"], spec_num_tokens=[2, 4],
                       spec_acceptance=0.7, prefix_cache_hit_rate=[0.0, 0.5])
    assert df.height == 2 * 3 * 2 * 2
    row = df.filter((df["spec_method"] == "eagle") & (df["spec_num_tokens"] == 4) & (df["batch_size"] == 16)
                    & (df["prefix_cache_hit_rate"] == 0.5)).to_dicts()[0]
    one = est(batch_size=16, spec_method="eagle", spec_num_tokens=4, spec_acceptance=0.7, prefix_cache_hit_rate=0.5)
    for key in ("ttft_ms", "tpot_ms", "weights_gb_per_device", "kv_cache_gb_per_device", "spec_tokens_per_step"):
        assert row[key] == pytest.approx(one[key], rel=1e-9), key


def test_cli_spec_keys(run_cli: Any, tmp_path: Path) -> None:
    p = run_cli("mantile", "model=llama_3.1_8b", "hardware=nvidia_h100_80gb", "serving=pytorch", "batch_size=1",
                "spec.method='[none,draft]'", "spec.num_tokens=3", "spec.draft_model=llama_3.2_1b",
                "prefix_cache_hit_rate=0.25", "hydra.run.dir=run")
    assert p.returncode == 0, p.stderr
    t = pq.read_table(tmp_path / "run" / "results.parquet").to_pylist()
    assert sorted(r["spec_method"] for r in t) == ["draft", "none"]
    assert all(r["prefix_cache_hit_rate"] == 0.25 and r["spec_num_tokens"] == 3 for r in t)
    bad = run_cli("mantile", "model=llama_3.1_8b", "hardware=nvidia_h100_80gb", "batch_size=1",
                  "spec.method=mtp", "hydra.run.dir=run2")
    assert bad.returncode == 2 and "spec_num_tokens" in bad.stderr


def test_http_bodies_take_speculation() -> None:
    body = copy.deepcopy(json.loads(BRIEF_SYSTEM_BODY))
    with TestClient(create_app()) as client:
        plain = client.post("/config/system-metrics", json=body)
        body.update(spec_method="ngram", spec_num_tokens=3, spec_acceptance=[0.8, 0.6, 0.4])
        spec = client.post("/config/system-metrics", json=body)
        assert plain.status_code == spec.status_code == 200, spec.text
        assert spec.json()["spec_tokens_per_step"] == pytest.approx(1 + 0.8 + 0.48 + 0.192)
        bad = client.post("/config/system-metrics", json={**body, "spec_method": "medusa"})
        assert bad.status_code == 422 and "spec_method" in bad.text
        mtp = client.post("/config/system-metrics", json={**body, "spec_method": "mtp", "spec_acceptance": 0})
        assert mtp.status_code == 422 and mtp.json()["detail"][0]["field"] == "spec_method"


# ---- published speculative-decoding results (issue 12 done-when) ----------------------------------------
#: Held until stop 23 (7 of 15 within 20%). The 7 were TensorRT-LLM's DeepSeek-R1 NVFP4 rows at one client on
#: eight B200s (its spring and mid-2025 latency blogs), predicted with every layer in NVFP4 and an NVFP4
#: router. The checkpoint they name keeps attention in bf16 (nvidia/DeepSeek-R1-FP4: conf/model/
#: deepseek_r1_fp4.yaml; the rows' own notes: "attention bf16, dense and MoE FFN nvfp4") and no engine
#: quantizes a router; costed so, the 2026 kernel constants put these 2025 runs 17-34% faster than measured
#: (aiconfigurator's 2026 silicon sample, the same engine and checkpoint family, came out better: DeepSeek
#: NVFP4 TensorRT-LLM TPOT 46% -> 36% MAPE aggregated, disaggregated TPOT 21% -> 16%). Strict: a fix shows.
@pytest.mark.xfail(strict=True, reason="0 of 15 within 20% once the DeepSeek-R1 NVFP4 rows run their checkpoint's "
                   "bf16 attention and a bf16 router (see the comment above)")
def test_published_speculative_results_within_20_percent() -> None:
    """At least 6 published speculative-decoding / MTP results of aggregated deployments reproduced within
    20% (acceptance lengths from each row's source where it states them, else the method default)."""
    rows = [r for r in read_rows(REPO / "benchmarks" / "published" / "serving_results.csv")
            if str(r.get("spec_method") or "none") != "none"]
    summary = speculative_summary(predictions(rows, skips={}))
    print(summary)
    assert summary["aggregated_within"] >= 6, summary
    assert SPEC_WITHIN_PCT == 20.0


def test_load_model_catalog_has_the_draft_used_in_docs() -> None:
    assert load_model("llama_3.2_1b").vocab_size == load_model("llama_3.1_8b").vocab_size  # same tokenizer


def test_sglang_caps_a_speculating_engine_at_48_running_requests() -> None:
    """SGLang's server_args reset max_running_requests to 48 when EAGLE / MTP / a draft model speculates
    (conf/serving/sglang.yaml spec_max_num_seqs); plain decoding keeps the KV-limited batch, and ngram
    (no proposer model) is not capped."""
    kw = dict(model="llama_3.1_8b", hardware="nvidia_h100_80gb", concurrency=1000, input_seq=200, output_seq=200,
              serving="sglang")
    plain = mantile.estimate(**kw)
    eagle = mantile.estimate(**kw, spec_method="eagle", spec_num_tokens=3)
    ngram = mantile.estimate(**kw, spec_method="ngram", spec_num_tokens=3)
    assert plain["running_batch"] > 48
    assert eagle["running_batch"] <= 48
    assert ngram["running_batch"] > 48
