"""Named kernels: a layer is a list of kernels as the stack launches them, and their times add up."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import mantile
from mantile.api import create_app

ATTENTION_DECODE = ["qkv_proj", "rope", "kv_cache_write", "attention", "cp_all_gather_q", "cp_reduce_scatter_out",
                    "attention_output_copy", "o_proj", "all_reduce"]


def test_issue_example_lists_named_kernels_that_sum_to_the_latency() -> None:
    r = mantile.layer_metrics(model="llama_3.1_8b", hardware="nvidia_h100_80gb", layer_type="attention",
                              serving="pytorch", phase="decode", batch_size=8, kv_length=2048, kernels=True)
    names = [k["name"] for k in r["named_kernels"]]
    assert names == ATTENTION_DECODE  # the pytorch stack: unfused RoPE, 2 KV copies, output re-layout
    assert sum(k["time_ms"] for k in r["named_kernels"]) == pytest.approx(r["latency_ms"], rel=1e-12)
    # tp = cp = 1: the collectives take no time and move nothing
    comm = {k["name"]: k for k in r["named_kernels"] if k["name"] in ("all_reduce", "cp_all_gather_q")}
    assert all(k["time_ms"] == 0 and k["comm_bytes"] == 0 for k in comm.values())


def test_kernel_bytes_by_kind_by_hand() -> None:
    """Llama 3.1 8B decode, batch 8, 2048 cached tokens, bf16, one H100:
    qkv_proj reads the weights h x (q + 2 kv) = 4096 x (4096 + 2*1024) values = 25,165,824 x 2 B;
    attention reads K and V: 8 seqs x 2048 tokens x 2 x 8 kv heads x 128 x 2 B = 67,108,864 B."""
    r = mantile.layer_metrics(model="llama_3.1_8b", hardware="nvidia_h100_80gb", layer_type="attention",
                              serving="pytorch", phase="decode", batch_size=8, kv_length=2048, kernels=True)
    k = {row["name"]: row for row in r["named_kernels"]}
    assert k["qkv_proj"]["weight_bytes"] == 4096 * (4096 + 2 * 1024) * 2
    assert k["qkv_proj"]["flops"] == 2 * 8 * 4096 * (4096 + 2 * 1024)
    assert k["attention"]["kv_bytes"] == 8 * 2048 * 2 * 8 * 128 * 2
    assert k["attention"]["bound"] == "memory"  # one query token per sequence: a cache read
    assert sum(row["kv_bytes"] for row in r["named_kernels"]) == r["kv_bytes_read_written"]


@pytest.mark.parametrize("layer_type,expected", [
    ("feedforward", ["gate_up_proj", "act_mul", "down_proj", "all_reduce"]),
    ("norm", ["norm", "residual_add"]),
    ("embedding", ["embedding_lookup", "embedding_all_reduce", "lm_head", "logits_all_gather"]),
])
def test_other_layer_types_name_their_kernels(layer_type: str, expected: list[str]) -> None:
    r = mantile.layer_metrics(model="llama_3.1_8b", hardware="nvidia_h100_80gb", layer_type=layer_type,
                              serving="pytorch", phase="prefill", batch_size=2, seq_length=1024, tp=2, kernels=True)
    assert [k["name"] for k in r["named_kernels"]] == expected
    assert sum(k["time_ms"] for k in r["named_kernels"]) == pytest.approx(r["latency_ms"], rel=1e-12)


def test_moe_layer_names_router_and_expert_gemms() -> None:
    r = mantile.layer_metrics(model="mixtral_8x7b", hardware="nvidia_h100_80gb", layer_type="feedforward",
                              serving="pytorch", phase="decode", batch_size=4, kv_length=1024, tp=2, ep=2, kernels=True)
    assert [k["name"] for k in r["named_kernels"]] == ["router", "experts_gate_up", "act_mul", "experts_down",
                                                       "all_reduce"]


def test_http_layer_metrics_returns_the_kernels() -> None:
    client = TestClient(create_app())
    body = {"model_id": "llama_3.1_8b", "hardware_config": "nvidia_h100_80gb", "layer_type": "attention",
            "phase": "decode", "batch_size": 8, "seq_length": 2048, "serving": "pytorch"}
    res = client.post("/config/layer-metrics", json=body)
    assert res.status_code == 200, res.text
    out = res.json()
    assert [k["name"] for k in out["named_kernels"]] == ATTENTION_DECODE
    assert sum(k["time_ms"] for k in out["named_kernels"]) == pytest.approx(out["latency_ms"], rel=1e-9)


def test_grouped_expert_gemm_uses_the_fitted_moe_constants_and_all_groups_tiles() -> None:
    """DeepSeek-V3's routed experts (h 7168, f 2048, 256 experts, top-8) on an H200 with TensorRT-LLM in
    fp8. 16384 tokens: 512 rows per expert, 4 x 32 tiles of 128 x 128 per expert for gate/up (2f = 4096
    columns), 256 x 128 = 32768 tiles over 132 SMs: no split-K, 249 waves (efficiency 32768 / (249 x 132)
    = 0.9969); compute time = 2 x 512 x 4096 x 7168 x 256 / (1978.9e12 x e x 7168 / (7168 + k_half) x 0.9969)
    with the grouped-GEMM constants e, k_half fitted to the measured fused-MoE tables (read from the
    fitted file here, not from the code). At 64 tokens (2 rows per expert) the 256 experts' 32 tiles
    each are 8192 tiles: still no split-K, one launch per GEMM (a per-expert split used to add partials)."""
    import yaml

    from mantile.specs import load_model

    root = Path(__file__).resolve().parent.parent
    fit = yaml.safe_load((root / "conf/efficiency/fitted/h200_sxm_trtllm.yaml").read_text())["moe_gemm"]["fp8_block"]
    eff, k_half = fit["gemm_efficiency"], fit["gemm_k_half"]
    m = dataclasses.replace(load_model("deepseek_v3"), n_shared_experts=0, first_k_dense_replace=0)

    def kernels(tokens: int) -> dict:
        lm = mantile.layer_metrics(m, "nvidia_h200_141gb", "feedforward", phase="decode", batch_size=tokens,
                                   seq_length=1, kv_length=1, dtype="fp8", serving="trtllm", kernels=True)
        return {k["name"]: k for k in lm["named_kernels"]}

    up = kernels(16384)["experts_gate_up"]
    waves = 32768 / (math.ceil(32768 / 132) * 132)
    expected_s = 2 * 512 * 4096 * 7168 * 256 / (1978.9e12 * eff * 7168 / (7168 + k_half) * waves)
    assert up["launches"] == 1
    assert up["compute_ms"] == pytest.approx(expected_s * 1e3, rel=1e-6)
    small = kernels(64)
    assert small["experts_gate_up"]["launches"] == 1 and small["experts_down"]["launches"] == 1


def test_block_scaled_fp8_checkpoints_use_the_block_scaled_gemm_constants() -> None:
    """DeepSeek-V3's FP8 weights carry one scale per 128 x 128 block (config.json weight_block_size), so its
    fp8 GEMMs are TensorRT-LLM's block-scaled kernel: at one token the fused qkv_a_proj GEMM (7168 x 2112, a
    memory-bound weight read, the same bytes either way) pays the fp8_block fixed cost of the fitted file,
    not the per-tensor fp8 one, whose timings carry a dynamic per-tensor scale reduction (11.8 vs 3.2 us on
    B200). The same model with per-tensor weights (weight_block_size 0) pays the difference."""
    import yaml

    from mantile.specs import load_model

    root = Path(__file__).resolve().parent.parent
    gemm = yaml.safe_load((root / "conf/efficiency/fitted/b200_sxm_trtllm.yaml").read_text())["gemm"]
    block = load_model("deepseek_v3")
    assert block.weight_block_size == 128

    def q_a_ms(m: object) -> float:
        lm = mantile.layer_metrics(m, "nvidia_b200_180gb", "attention", phase="decode", batch_size=1,
                                   seq_length=1, kv_length=1024, dtype="fp8", serving="trtllm", kernels=True)
        k = {k["name"]: k for k in lm["named_kernels"]}["qkv_a_proj"]
        assert k["compute_ms"] < k["memory_ms"]  # the weight read, the same bytes for both, sets the time
        return float(k["time_ms"])

    per_tensor = dataclasses.replace(block, weight_block_size=0)
    difference_us = (q_a_ms(per_tensor) - q_a_ms(block)) * 1e3
    expected = gemm["fp8"]["gemm_overhead_us"] - gemm["fp8_block"]["gemm_overhead_us"]
    assert difference_us == pytest.approx(expected, rel=1e-6)


def test_fused_moe_streams_its_experts_at_the_kernels_fitted_rate() -> None:
    """A grouped (fused-MoE) GEMM reads its experts at the weight-streaming rate fitted to the engine's MoE
    table for that format (conf/efficiency/fitted/, moe_gemm.<format>.memory_efficiency), not the dense one:
    vLLM's MXFP4-weight, bf16-math MoE on an H200 (GPT-OSS on Hopper). GPT-OSS-120B decoding one token
    touches its 4 routed experts: gate_up reads 4 x 2 x 2880 x 2880 x (0.5 + 1/32) bytes (4-bit values,
    one 8-bit scale per 32) and the 2880-wide bf16 input once per pick, writes 4 x 2 x 2880 bf16 outputs."""
    import yaml

    import mantile
    from mantile.specs import conf_dir, load_hardware

    fitted = yaml.safe_load((conf_dir() / "efficiency" / "fitted" / "h200_sxm_vllm.yaml").read_text())
    rate = fitted["moe_gemm"]["w4a16_mxfp4"]["memory_efficiency"]
    assert rate < fitted["kept_from_generation"]["memory_efficiency"] - 0.1  # a slower kernel than dense streaming
    hbm = load_hardware("nvidia_h200_141gb").device.hbm_bandwidth_bytes_per_s
    r = mantile.layer_metrics(model="gpt_oss_120b", hardware="nvidia_h200_141gb", layer_type="feedforward",
                              phase="decode", batch_size=1, kv_length=1024, kernels=True, serving="vllm",
                              dtype="w4a16")
    gate_up = next(k for k in r["named_kernels"] if k["name"] == "experts_gate_up")
    weights = 4 * 2 * 2880 * 2880 * (0.5 + 1 / 32)
    assert gate_up["weight_bytes"] == pytest.approx(weights, rel=1e-12)
    moved = weights + (4 * 2880 + 4 * 2 * 2880) * 2
    assert gate_up["memory_ms"] == pytest.approx(moved / (hbm * rate) * 1e3, rel=1e-9)


def test_fused_moe_pays_its_fitted_fixed_cost_once_per_layer() -> None:
    """A fused-MoE op launches routing, permute and finalize kernels beside its two grouped GEMMs; an engine's
    MoE table measures their time (under CUDA graphs) as the op's intercept, fitted per format as
    ``op_overhead_us`` (benchmarks/aiconfigurator/fit_kernels.py). GPT-OSS-120B's MXFP4 experts on an H200
    under TensorRT-LLM (W4A16): the feedforward layer lists ``experts_routing`` once, no launches, at the
    fitted fixed time, and its layer latency is the sum of its kernels. Mixtral under the calibrated PyTorch
    loop (no fitted MoE table) has no such kernel. A dense MLP never has it."""
    import yaml

    from mantile.specs import conf_dir

    fitted = yaml.safe_load((conf_dir() / "efficiency" / "fitted" / "h200_sxm_trtllm.yaml").read_text())
    op_us = fitted["moe_gemm"]["w4a16_mxfp4"]["op_overhead_us"]
    assert op_us > 0
    r = mantile.layer_metrics(model="gpt_oss_120b", hardware="nvidia_h200_141gb", layer_type="feedforward",
                              phase="decode", batch_size=4, kv_length=1024, kernels=True, serving="trtllm",
                              dtype="w4a16")
    routing = [k for k in r["named_kernels"] if k["name"] == "experts_routing"]
    assert len(routing) == 1 and routing[0]["launches"] == 0
    assert routing[0]["time_ms"] == pytest.approx(op_us * 1e-3, rel=1e-12)
    assert sum(k["time_ms"] for k in r["named_kernels"]) == pytest.approx(r["latency_ms"], rel=1e-9)
    for model, serving in (("mixtral_8x7b", "pytorch"), ("llama_3.1_8b", "trtllm")):
        other = mantile.layer_metrics(model=model, hardware="nvidia_h200_141gb", layer_type="feedforward",
                                      phase="decode", batch_size=4, kv_length=1024, kernels=True, serving=serving)
        assert "experts_routing" not in {k["name"] for k in other["named_kernels"]}


def test_mla_runs_its_down_projections_as_one_gemm() -> None:
    """SGLang, vLLM and TensorRT-LLM all run DeepSeek's q_a_proj (7168 -> 1536) and kv_a_proj_with_mqa
    (7168 -> 512 + 64) as one GEMM, 7168 -> 2112: by hand, 4 decoding sequences are 2 x 4 x 2112 x 7168 =
    121,110,528 FLOPs and 2112 x 7168 = 15,138,816 one-byte FP8 weights, in one kernel (and its
    activation quantize), not two."""
    lm = mantile.layer_metrics("deepseek_v3", "nvidia_b200_180gb", "attention", phase="decode", batch_size=4,
                               seq_length=1, kv_length=1024, dtype="fp8", serving="trtllm", kernels=True)
    named = {k["name"]: k for k in lm["named_kernels"]}
    assert "q_a_proj" not in named and "kv_a_proj" not in named
    assert named["qkv_a_proj"]["flops"] == 121_110_528
    assert named["qkv_a_proj"]["weight_bytes"] == 15_138_816


def test_a_checkpoints_unquantized_projections_run_and_are_stored_in_bf16() -> None:
    """NVIDIA's NVFP4 DeepSeek-R1 releases leave q_a, q_b, kv_a and kv_b in bf16 (v1 also o_proj;
    conf/model/deepseek_r1_fp4*.yaml). By hand at tp 8, one decoding sequence: the fused q_a + kv_a GEMM reads
    2112 x 7168 x 2 = 30,277,632 bf16 bytes; o_proj reads 2048 x 7168 values, in NVFP4 (v2: 0.5625 B each,
    8,257,536 B) or bf16 (v1: 29,360,128 B). Per device the excluded projections hold, per layer,
    7168 x 1536 + 7168 x 576 (replicated) + 1536 x 16 x 192 + 512 x 16 x 256 = 21,954,560 parameters, x 61
    layers = 1,339,228,160, each 2 - 0.5625 = 1.4375 B more than in NVFP4: 1.925 GB more weights a GPU
    than DeepSeek-R1 with every layer in NVFP4."""
    def named(model: str) -> dict[str, dict]:
        lm = mantile.layer_metrics(model, "nvidia_b200_180gb", "attention", phase="decode", batch_size=1,
                                   seq_length=1, kv_length=1024, dtype="fp4", serving="trtllm", tp=8, kernels=True)
        return {k["name"]: k for k in lm["named_kernels"]}

    v2, v1, all_fp4 = named("deepseek_r1_fp4_v2"), named("deepseek_r1_fp4"), named("deepseek_r1")
    assert v2["qkv_a_proj"]["weight_bytes"] == v1["qkv_a_proj"]["weight_bytes"] == 30_277_632
    assert all_fp4["qkv_a_proj"]["weight_bytes"] == pytest.approx(2112 * 7168 * 0.5625)
    assert v2["o_proj"]["weight_bytes"] == pytest.approx(8_257_536)
    assert v1["o_proj"]["weight_bytes"] == 29_360_128

    def weights_gb(model: str) -> float:
        return float(mantile.estimate(model, "nvidia_b200_180gb", dtype="fp4", tp=8, batch_size=1, input_seq=1024,
                                      output_seq=128, serving="trtllm")["weights_gb_per_device"])

    difference = weights_gb("deepseek_r1_fp4_v2") - weights_gb("deepseek_r1")
    assert difference == pytest.approx(1_339_228_160 * 1.4375 / 1e9, rel=1e-9)


def test_an_moe_router_is_never_quantized() -> None:
    """Every engine builds the MoE router (gate) unquantized (SGLang's MoEGate a bf16 parameter, vLLM's gate
    a ReplicatedLinear with quant_config=None): in an FP8 Mixtral-8x7B decode step the router reads
    4096 x 8 x 2 = 65,536 bf16 bytes and costs exactly what it costs beside bf16 experts (the bf16 GEMM's
    constants, no activation-quantize kernel), while the experts' GEMMs differ."""
    from mantile.estimator import system_efficiency
    from mantile.serving.system import layer_cost
    from mantile.specs import load_hardware, load_model, load_serving

    hw, st = load_hardware("nvidia_h100_80gb"), load_serving("vllm")
    def kernels(dtype: str) -> dict:
        c = layer_cost(load_model("mixtral_8x7b"), hw, system_efficiency(hw, st), st, "feedforward", "decode", 1, 1,
                       1024, dtype=dtype)
        return {k.name: k for k in c.kernels}

    fp8, bf16 = kernels("fp8"), kernels("bf16")
    assert float(fp8["router"].weight_bytes) == 4096 * 8 * 2
    assert float(fp8["router"].time_s) == float(bf16["router"].time_s)
    assert float(fp8["experts_gate_up"].time_s) != float(bf16["experts_gate_up"].time_s)


def test_an_expert_parallel_device_runs_its_experts_at_the_fitted_ep_efficiency() -> None:
    """``GemmConstants.ep_efficiency`` (fitted per format to the engines' expert-parallel MoE tables) sets the
    grouped GEMMs' efficiency on a device of an ep-wide group, linear in log2(ep) between the fitted sizes
    and the largest fitted size's beyond. By hand, with the ep = 1 efficiency e: {4: e / 2} makes the
    experts' compute time 2x at ep 4 and at ep 8 (held), and 1 / 0.75 at ep 2 (halfway from 1 to 0.5 in
    log2 ep); ep 1 is unchanged. A prefill of 8192 tokens keeps the experts compute-bound."""
    from mantile.engine.spec import system_efficiency
    from mantile.specs import load_hardware, load_serving

    hw = load_hardware("nvidia_h200_141gb")
    base = system_efficiency(hw, load_serving("trtllm"))
    g = base.moe_gemm_constants("fp8")

    def profile(ep_efficiency: dict[int, float]) -> object:
        return dataclasses.replace(base, moe_gemm_dtypes={**base.moe_gemm_dtypes, "fp8": dataclasses.replace(
            g, ep_efficiency=ep_efficiency)})

    def experts_ms(eff: object, ep: int) -> float:
        r = mantile.layer_metrics(model="mixtral_8x7b", hardware="nvidia_h200_141gb", layer_type="feedforward",
                                  phase="prefill", batch_size=1, seq_length=8192, dtype="fp8", tp=8, ep=ep,
                                  serving="trtllm", efficiency=eff, kernels=True)
        return sum(k["compute_ms"] for k in r["named_kernels"] if k["name"].startswith("experts_"))

    plain, halved = profile({}), profile({4: g.gemm_efficiency / 2})
    assert experts_ms(halved, 4) == pytest.approx(2 * experts_ms(plain, 4), rel=1e-12)
    assert experts_ms(halved, 8) == pytest.approx(2 * experts_ms(plain, 8), rel=1e-12)
    assert experts_ms(halved, 2) == pytest.approx(experts_ms(plain, 2) / 0.75, rel=1e-12)
    assert experts_ms(halved, 1) == pytest.approx(experts_ms(plain, 1), rel=1e-12)


def test_fitted_ep_efficiencies_load_with_integer_sizes() -> None:
    """The fitted files list ep_efficiency by expert-parallel size; the catalog keeps the sizes as integers
    and each value a fraction (TensorRT-LLM's NVFP4 MoE on B200 keeps well under its ep = 1 efficiency)."""
    from mantile.engine.spec import system_efficiency
    from mantile.specs import load_hardware, load_serving

    g = system_efficiency(load_hardware("nvidia_b200_180gb"), load_serving("trtllm")).moe_gemm_constants("fp4")
    assert g.ep_efficiency and all(isinstance(ep, int) and ep >= 2 for ep in g.ep_efficiency)
    assert g.ep_efficiency[4] < 0.5 * g.gemm_efficiency


def test_one_points_machine_is_built_once_per_inputs() -> None:
    """``costs.step.machine`` memoizes a single point's machine (string formats, a scalar ep): the same
    hardware, profiles and formats give the same frozen Machine; another profile object, even one equal but
    for one constant, gets its own (the cache is keyed by the objects themselves, kept alive in it)."""
    from mantile.costs.step import machine
    from mantile.engine.spec import system_efficiency
    from mantile.specs import load_hardware, load_serving

    hw, serving = load_hardware("nvidia_h200_141gb"), load_serving("trtllm")
    eff = system_efficiency(hw, serving)
    m1, _ = machine(hw, eff, serving, "fp8", "fp8", ep=4.0)
    m2, _ = machine(hw, eff, serving, "fp8", "fp8", ep=4.0)
    assert m1 is m2
    assert machine(hw, eff, serving, "fp8", "fp8", ep=8.0)[0] is not m1
    g = eff.gemm_constants("fp8")
    other = dataclasses.replace(eff, gemm_dtypes={**eff.gemm_dtypes, "fp8": dataclasses.replace(
        g, gemm_efficiency=g.gemm_efficiency / 2)})
    m3, _ = machine(hw, other, serving, "fp8", "fp8", ep=4.0)
    assert float(m3.gemm_efficiency) == pytest.approx(float(m1.gemm_efficiency) / 2, rel=1e-12)


def test_a_tensor_parallel_slice_of_each_expert_computes_below_the_whole_experts_efficiency() -> None:
    """Each device of a tp 8 MoE block without expert parallelism holds a 1536 / 8 = 192-wide slice of each of
    Qwen3-235B-A22B's experts. Its FP8 checkpoint is block-scaled, and TensorRT-LLM's H200 MoE table fits that
    grouped GEMM's slice efficiency as w / (w + w_half) over the whole expert's 1536 / (1536 + w_half)
    (``slice_width_half``, 715.8 for fp8_block in conf/efficiency/fitted/h200_sxm_trtllm.yaml). By hand,
    (192 / 907.8) / (1536 / 2251.8) = 0.3101, so a compute-bound expert GEMM (a 16,384-token prefill) takes
    1 / 0.3101 = 3.225x its compute time at the whole-expert efficiency; its weights stream at the same rate
    either way; a dense MLP is untouched."""
    import dataclasses

    import yaml

    from mantile.costs.feedforward import slice_scale
    from mantile.estimator import load_hardware, resolve_serving, system_efficiency
    from mantile.specs import conf_dir
    from mantile.specs.hardware import EfficiencyProfile

    w_half = yaml.safe_load((conf_dir() / "efficiency" / "fitted" / "h200_sxm_trtllm.yaml").read_text())[
        "moe_gemm"]["fp8_block"]["slice_width_half"]
    assert w_half == pytest.approx(715.8, abs=0.05)
    expected = (192 / (192 + w_half)) / (1536 / (1536 + w_half))
    assert float(slice_scale(192.0, 1536.0, w_half)) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.3101, abs=5e-5)
    hw, st = load_hardware("nvidia_h200_141gb"), resolve_serving("trtllm")
    eff = system_efficiency(hw, st)
    whole = dataclasses.replace(eff, moe_gemm_dtypes={
        k: dataclasses.replace(v, slice_width_half=0.0) for k, v in eff.moe_gemm_dtypes.items()})

    def experts(efficiency: EfficiencyProfile, model: str = "qwen3_235b_a22b") -> dict:
        r = mantile.layer_metrics(model, "nvidia_h200_141gb", "feedforward", phase="prefill", batch_size=1,
                                  seq_length=16384, dtype="fp8", tp=8, serving="trtllm", kernels=True,
                                  efficiency=efficiency)
        return {k["name"]: k for k in r["named_kernels"]}

    sliced, full = experts(eff), experts(whole)
    for name in ("experts_gate_up", "experts_down"):
        assert sliced[name]["compute_ms"] / full[name]["compute_ms"] == pytest.approx(1 / expected, rel=1e-9)
        assert sliced[name]["memory_ms"] == pytest.approx(full[name]["memory_ms"], rel=1e-12)
    dense = experts(eff, "llama_3.1_8b"), experts(whole, "llama_3.1_8b")
    assert dense[0]["gate_up_proj"]["time_ms"] == dense[1]["gate_up_proj"]["time_ms"]
