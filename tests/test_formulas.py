"""Hand-derived checks of the cost formulas. Each expected value is worked out in the comment with
round-number synthetic hardware, so it can be redone with a calculator."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import mantile
from mantile.costs import kernels, memory
from mantile.costs.families import parameters
from mantile.costs.kernels import Cost, Machine
from mantile.specs import load_efficiency, load_model, load_serving

EFF = dataclasses.replace(load_efficiency("hopper"), gemm_efficiency=0.5, gemm_k_half=0.0, memory_efficiency=1.0,
                          kernel_overhead_us=0.0, gemm_overhead_us=0.0, attention_efficiency=0.5,
                          attention_head_dim_half=0.0, gemm_tile_m=128, gemm_tile_n=128,
                          gemm_split_k_min_depth=512)
# A synthetic device: 1 PFLOP/s, 1 TB/s, 1024 compute units.
M = Machine(peak_flops_per_s=1e15, hbm_bytes_per_s=1e12, compute_units=1024, eff=EFF,
            stack=load_serving("pytorch").kernels)


def test_square_gemm_is_compute_bound() -> None:
    # 4096^3 bf16: flops = 2 * 4096^3 = 137,438,953,472.
    # tiles = (4096/128)^2 = 1024 = one full wave on 1024 units; no split-K (split = 1024 // 1024 = 1).
    # compute = 1.374e11 / (1e15 * 0.5) = 274.878 us; bytes = 3 * 4096^2 * 2 = 100,663,296 -> 100.66 us.
    c = Cost()
    kernels.gemm(c, M, 4096, 4096, 4096, 2.0, 2.0)
    assert c.flops == pytest.approx(137_438_953_472)
    assert c.bytes == pytest.approx(100_663_296)
    assert c.busy_s == pytest.approx(274.878e-6, rel=1e-5)
    assert c.compute_bound_s == pytest.approx(c.busy_s)


def test_gemv_is_memory_bound_with_split_k_partials() -> None:
    # [1 x 8192] @ [8192 x 8192]: weights 8192^2 * 2 = 134,217,728 B; input + output 2 * 8192 * 2 = 32,768 B.
    # tiles = 1 * 64 = 64; split-K = min(1024 // 64, 8192 // 512) = 16 -> fp32 partials written and read:
    # 2 * 16 * 1 * 8192 * 4 = 1,048,576 B. Total 135,299,072 B at 1 TB/s = 135.299 us; 2 launches.
    c = Cost()
    kernels.gemm(c, M, 1, 8192, 8192, 2.0, 2.0)
    assert c.bytes == pytest.approx(135_299_072)
    assert c.busy_s == pytest.approx(135.299072e-6)
    assert c.launches == 2


def test_k_half_and_wave_quantization_slow_the_gemm() -> None:
    # K factor: with gemm_k_half = 4096 a K=4096 GEMM runs at half the rate: 549.756 us.
    m = dataclasses.replace(M, eff=dataclasses.replace(EFF, gemm_k_half=4096.0))
    c = Cost()
    kernels.gemm(c, m, 4096, 4096, 4096, 2.0, 2.0)
    assert c.busy_s == pytest.approx(2 * 274.878e-6, rel=1e-5)
    # 1025 tiles on 1024 units -> 2 waves, efficiency 1025/2048: rows 4096+128 -> 33*32 = 1056 tiles
    # -> 2 waves, efficiency 1056/2048; flops 2*4224*4096*4096 = 1.41733e11 -> /(5e14*1056/2048) = 549.76 us.
    c = Cost()
    kernels.gemm(c, M, 4224, 4096, 4096, 2.0, 2.0)
    assert c.busy_s == pytest.approx(2 * 4224 * 4096 * 4096 / (5e14 * 1056 / 2048), rel=1e-9)


def test_causal_flash_attention_flops() -> None:
    # b=1, 32 heads, s=4096, d=128, causal: each query sees (s+1)/2 keys on average:
    # flops = 4 * 32 * 4096 * 2048.5 * 128 = 137,472,507,904; bytes = 2*4096*32*128*2 (Q, O) +
    # 2*4096*8*128*2 (K, V) = 67,108,864 + 16,777,216 = 83,886,080.
    # 32 heads * 32 query tiles = 1024 tiles = one wave -> compute = 1.37473e11 / 5e14 = 274.945 us.
    c = Cost()
    kernels.attention_core(c, M, 1, 4096, 4096, 32, 8, 128, 2.0, 2.0, causal=True, count=1, kv_eff=2048.5)
    assert c.flops == pytest.approx(137_472_507_904)
    assert c.bytes == pytest.approx(83_886_080)
    assert c.busy_s == pytest.approx(274.945e-6, rel=1e-5)


def test_weights_of_llama_8b() -> None:
    # per layer: attention 4096*(4096+2*1024) + 4096*4096 = 41,943,040; MLP 3*4096*14336 = 176,160,768;
    # 2 norms 8,192 -> 218,112,000 * 32 = 6,979,584,000; embedding + LM head 2*128256*4096 =
    # 1,050,673,152; final norm 4,096: 8,030,261,248 params * 2 B = 16.0605 GB (model card: 8.03B).
    m = load_model("llama_3.1_8b")
    w = memory.weight_bytes(m, tp=1, ep=1, tp_emb=1, pp=1, w_bytes=2.0)
    assert float(w) == pytest.approx(16_060_522_496)
    # tp=2: attention 4096*(2048+2*512) + 2048*4096 = 20,971,520; MLP 88,080,384; norms 8,192
    # -> 109,060,096 * 32 = 3,489,923,072; tables 1,050,673,152 / 2 = 525,336,576; final norm 4,096
    # = 4,015,263,744 params * 2 B.
    w2 = memory.weight_bytes(m, tp=2, ep=1, tp_emb=2, pp=1, w_bytes=2.0)
    assert float(w2) == pytest.approx(8_030_527_488)


def test_kv_cache_of_llama_8b() -> None:
    # 2 (K,V) * 32 layers * 8 kv heads * 128 * 2 B = 131,072 B per token; 64 seqs * 8194 tokens.
    m = load_model("llama_3.1_8b")
    kv = memory.kv_cache_bytes(m, batch=64, context=8194, tp=1, pp=1, cp=1, kv_bytes=2.0)
    assert float(kv) == pytest.approx(131_072 * 64 * 8194)
    # tp=16 > 8 kv heads: heads are replicated, one per device -> 1/8 of the cache, not 1/16.
    kv16 = memory.kv_cache_bytes(m, batch=64, context=8194, tp=16, pp=1, cp=1, kv_bytes=2.0)
    assert float(kv16) == pytest.approx(131_072 * 64 * 8194 / 8)


def test_estimate_reports_those_memory_numbers() -> None:
    r = mantile.estimate(model="llama_3.1_8b", hardware="nvidia_h100_80gb", batch_size=64, input_seq=8192,
                         serving="pytorch", output_seq=2)
    assert r["weights_gb_per_device"] == pytest.approx(16.0605, abs=1e-3)
    assert r["kv_cache_gb_per_device"] == pytest.approx(131_072 * 64 * 8194 / 1e9, rel=1e-9)
    # H100: 79.6 GiB visible, 5% reserve -> 79.6 * 2**30 * 0.95 / 1e9 = 81.196 GB usable < 84.8 needed.
    assert r["usable_memory_gb_per_device"] == pytest.approx(79.6 * 2**30 * 0.95 / 1e9)
    assert r["fits"] is False and "does not fit" in r["reason"]


def test_e2e_and_throughput_definitions() -> None:
    r = mantile.estimate(model="llama_3.1_8b", hardware="nvidia_h100_80gb", batch_size=8, input_seq=1024,
                         serving="pytorch", output_seq=128, dp=2)
    assert r["e2e_latency_ms"] == pytest.approx(r["ttft_ms"] + 127 * r["tpot_ms"])
    assert r["throughput_tokens_per_s"] == pytest.approx(2 * 8 * 128 / (r["e2e_latency_ms"] / 1e3))
    assert r["tokens_per_s_per_user"] == pytest.approx(1000 / r["tpot_ms"])
    assert r["num_devices"] == 2
    assert r["throughput_tokens_per_s_per_device"] == pytest.approx(r["throughput_tokens_per_s"] / 2)


def test_layer_metrics_contract_and_decode_reads_the_cache() -> None:
    base = dict(model="llama_3.1_8b", hardware="nvidia_h100_80gb", layer_type="attention", phase="decode",
                batch_size=16, seq_length=1)
    short = mantile.layer_metrics(serving="pytorch", kv_length=1024, **base)
    long = mantile.layer_metrics(serving="pytorch", kv_length=9216, **base)
    for key in ("flops", "bytes", "compute_ms", "memory_ms", "comm_ms", "latency_ms", "bound"):
        assert key in short
    # 8192 more cached tokens: 16 seqs * 8192 * 2 (K,V) * 8 heads * 128 * 2 B = 536,870,912 B more read.
    assert long["bytes"] - short["bytes"] == pytest.approx(536_870_912)
    assert short["bound"] in ("memory", "overhead")


def test_fp8_halves_weight_bytes() -> None:
    bf = mantile.estimate(model="llama_3.3_70b", hardware="nvidia_h100_80gb", batch_size=1, input_seq=128,
                          serving="pytorch", output_seq=2, tp=8)
    f8 = mantile.estimate(model="llama_3.3_70b", hardware="nvidia_h100_80gb", batch_size=1, input_seq=128,
                          serving="pytorch", output_seq=2, tp=8, dtype="fp8")
    assert f8["weights_gb_per_device"] == pytest.approx(bf["weights_gb_per_device"] / 2)
    assert f8["tpot_ms"] < bf["tpot_ms"]


def test_vectorized_and_scalar_agree() -> None:
    df = mantile.sweep(model="llama_3.1_8b", hardware="nvidia_h100_80gb", batch_size=[1, 32], input_seq=[512, 4096],
                       serving="pytorch", output_seq=64, tp=[1, 2])
    for row in df.iter_rows(named=True):
        one = mantile.estimate(model="llama_3.1_8b", hardware="nvidia_h100_80gb", batch_size=row["batch_size"],
                               serving="pytorch", input_seq=row["input_seq"], output_seq=64, tp=row["tp"])
        assert np.isclose(one["tpot_ms"], row["tpot_ms"]) and np.isclose(one["ttft_ms"], row["ttft_ms"])


@pytest.mark.parametrize("model,hardware,seq,out,tp", [
    ("llama_3.1_8b", "nvidia_h100_80gb", 2048, 256, 1), ("llama_3.1_8b", "nvidia_h100_80gb", 128, 64, 1),
    ("llama_3.3_70b", "nvidia_h200_141gb", 4096, 512, 2), ("tinyllama_1.1b", "nvidia_a100_80gb", 32, 16, 1),
])
def test_max_batch_size_is_the_largest_batch_that_fits(model, hardware, seq, out, tp) -> None:
    kw = dict(model=model, hardware=hardware, input_seq=seq, output_seq=out, tp=tp, enforce_max_position=False)
    b = mantile.estimate(serving="pytorch", batch_size=1, **kw)["max_batch_size"]
    assert b > 1
    assert mantile.estimate(serving="pytorch", batch_size=b, **kw)["fits"]
    assert not mantile.estimate(serving="pytorch", batch_size=b + 1, **kw)["fits"]
    # the answer does not depend on the batch of the row that reports it
    assert mantile.estimate(serving="pytorch", batch_size=max(1, b // 3), **kw)["max_batch_size"] == b


def test_layer_metrics_splits_bytes_into_weights_kv_and_activations() -> None:
    r = mantile.layer_metrics(model="llama_3.1_8b", hardware="nvidia_h100_80gb", layer_type="attention",
                              serving="pytorch", phase="decode", batch_size=16, seq_length=1, kv_length=2048)
    # weights: Wqkv 4096 x 6144 + Wo 4096 x 4096, bf16 = 50,331,648 + 33,554,432 B
    assert r["weight_bytes_read"] == pytest.approx(83_886_080)
    assert r["weights_bytes_per_device"] == pytest.approx(83_886_080)
    # KV: read 16 seqs * 2048 * 2 (K,V) * 8 heads * 128 * 2 B = 134,217,728; write the new token 65,536
    assert r["kv_bytes_read_written"] == pytest.approx(134_217_728 + 65_536)
    assert r["kv_cache_bytes_per_device"] == pytest.approx(134_217_728)
    assert r["comm_bytes"] == 0 and r["comm_ms"] == 0  # tp = 1: no collective


@pytest.mark.parametrize("model_id", ["llama_3.1_8b", "qwen2.5_32b", "mixtral_8x7b", "llama_3.2_1b"])
def test_memory_weights_agree_with_the_model_parameter_count(model_id: str) -> None:
    # one device (tp=pp=1) holds every parameter: weights = total_params * 2 bytes (bf16)
    m = load_model(model_id)
    w = memory.weight_bytes(m, tp=1, ep=1, tp_emb=1, pp=1, w_bytes=2.0)
    assert float(w) == pytest.approx(2.0 * parameters(m).total)
