"""Continuous (in-flight) batching vs static batching: definitions and physics."""

from __future__ import annotations

import pytest

import mantile

KW = dict(model="llama_3.1_8b", hardware="nvidia_h100_80gb", input_seq=2048, output_seq=256)


def test_continuous_tpot_includes_the_prefills_riding_along() -> None:
    static = mantile.estimate(serving="pytorch", batch_size=64, **KW)
    cont = mantile.estimate(serving="pytorch", batch_size=64, batching="continuous", **KW)
    # each iteration also prefills 64/256 = 0.25 prompts of 2048 tokens = 512 extra tokens
    assert cont["tpot_ms"] > static["tpot_ms"]
    # ...which costs less than a quarter of the whole batch's prefill on top of the decode step
    assert cont["tpot_ms"] < static["tpot_ms"] + static["ttft_ms"] / 256 * 1.05
    assert cont["throughput_tokens_per_s"] == pytest.approx(64 * 1000 / cont["tpot_ms"])
    assert cont["e2e_latency_ms"] == pytest.approx(cont["ttft_ms"] + 255 * cont["tpot_ms"])


def test_continuous_ttft_is_one_prompt_not_the_whole_batch() -> None:
    one = mantile.estimate(batch_size=1, output_seq=1, input_seq=2048, model=KW["model"], hardware=KW["hardware"],
        serving="pytorch")
    cont = mantile.estimate(serving="pytorch", batch_size=64, batching="continuous", **KW)
    static = mantile.estimate(serving="pytorch", batch_size=64, **KW)
    assert cont["ttft_ms"] == pytest.approx(one["ttft_ms"] + cont["tpot_ms"], rel=0.02)
    assert cont["ttft_ms"] < static["ttft_ms"] / 10


def test_unknown_batching_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="batching.*continuous"):
        mantile.estimate(serving="pytorch", batch_size=1, batching="dynamic", **KW)
