"""Properties that must hold for any model, hardware and plan (hypothesis-generated points)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mantile
from mantile.specs import ids

MODELS = ["tinyllama_1.1b", "llama_3.1_8b", "llama_3.3_70b", "qwen2.5_32b", "mixtral_8x7b", "llama_3.2_1b"]
HARDWARE = ids("hardware")
point = dict(model=st.sampled_from(MODELS), hardware=st.sampled_from(HARDWARE),
             batch=st.sampled_from([1, 3, 16, 64, 256]), seq=st.sampled_from([128, 1000, 4096]),
             out=st.sampled_from([1, 2, 64, 512]), dtype=st.sampled_from(["bf16", "fp8"]))


@settings(max_examples=40, deadline=None)
@given(**point)
def test_more_tp_never_raises_weights_per_device(model, hardware, batch, seq, out, dtype) -> None:
    df = mantile.sweep(model=model, hardware=hardware, batch_size=batch, input_seq=seq, output_seq=out,
                       tp=[1, 2, 4, 8], dtype=dtype)
    ok = df.filter(df["valid"]).sort("tp")
    w = ok["weights_gb_per_device"].to_numpy()
    assert (np.diff(w) <= 1e-12).all()
    kv = ok["kv_cache_gb_per_device"].to_numpy()
    assert (np.diff(kv) <= 1e-12).all()


@settings(max_examples=40, deadline=None)
@given(**point, tp=st.sampled_from([1, 2, 4, 8]), pp=st.sampled_from([1, 2, 4]))
def test_latency_positive_and_finite_for_valid_points(model, hardware, batch, seq, out, dtype, tp, pp) -> None:
    r = mantile.estimate(model=model, hardware=hardware, batch_size=batch, input_seq=seq, output_seq=out, tp=tp,
                         pp=pp, dtype=dtype)
    if r["valid"]:
        for key in ("ttft_ms", "tpot_ms", "e2e_latency_ms", "throughput_tokens_per_s"):
            assert np.isfinite(r[key]) and r[key] > 0, key
        assert r["memory_gb_per_device"] > 0
    else:
        assert r["reason"] and not r["fits"]


@settings(max_examples=25, deadline=None)
@given(model=st.sampled_from(MODELS), hardware=st.sampled_from(HARDWARE), seq=st.sampled_from([128, 2048]))
def test_bigger_batch_never_lowers_decode_throughput_before_memory_runs_out(model, hardware, seq) -> None:
    """A plain decode batch (no scheduler: an engine's steps also carry other prompts' prefill, which grows
    with the batch, so its decode-only rate need not rise)."""
    df = mantile.sweep(model=model, hardware=hardware, batch_size=[1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
                       serving="pytorch",
                       input_seq=seq, output_seq=128, dtype="fp8" if "a100" not in hardware else "bf16")
    fit = df.filter(df["fits"]).sort("batch_size")
    thr = fit["decode_throughput_tokens_per_s"].to_numpy()
    assert (np.diff(thr) >= -1e-9 * thr[:-1]).all()


def test_invalid_plans_are_rows_with_reasons_not_crashes() -> None:
    df = mantile.sweep(model="llama_3.1_8b", hardware="nvidia_h100_80gb", batch_size=1, input_seq=2048,
                       output_seq=16, tp=[3, 16], pp=[1, 64], ep=[1, 2], sp=[1, 5])
    assert df.height == 16 and not df["valid"].any()
    reasons = " ".join(df["reason"].to_list())
    for text in ("tp=3 does not divide num_attention_heads (32)", "exceeds num_hidden_layers (32)",
                 "ep=2 invalid", "sp=5 invalid"):
        assert text in reasons, text


@settings(max_examples=20, deadline=None)
@given(batch=st.sampled_from([1, 8, 64]), seq=st.sampled_from([512, 4096]))
def test_more_ep_or_pp_never_raises_memory_per_device(batch, seq) -> None:
    kw = dict(hardware="nvidia_h100_80gb_x4", batch_size=batch, input_seq=seq, output_seq=128)
    df = mantile.sweep(model="mixtral_8x7b", tp=8, ep=[1, 2, 4, 8], **kw).sort("ep")
    for col in ("weights_gb_per_device", "activation_gb_per_device", "memory_gb_per_device"):
        assert (np.diff(df[col].to_numpy()) <= 1e-12).all(), col
    df = mantile.sweep(model="llama_3.3_70b", tp=2, pp=[1, 2, 4, 8], **kw).sort("pp")
    for col in ("weights_gb_per_device", "kv_cache_gb_per_device", "memory_gb_per_device"):
        assert (np.diff(df[col].to_numpy()) <= 1e-12).all(), col


def test_per_device_work_falls_with_pipeline_stages() -> None:
    kw = dict(model="llama_3.3_70b", hardware="nvidia_h100_80gb_x4", batch_size=8, input_seq=2048, output_seq=128)
    one = mantile.estimate(pp=1, **kw)
    two = mantile.estimate(pp=2, **kw)
    # each device runs half of the layers for every micro-batch: half the FLOPs (GEMM FLOPs are linear
    # in the rows; the embedding and LM head are spread over the stages in this per-device figure)
    assert two["decode_flops"] == pytest.approx(one["decode_flops"] / 2, rel=1e-9)
    assert two["prefill_flops"] == pytest.approx(one["prefill_flops"] / 2, rel=1e-9)
