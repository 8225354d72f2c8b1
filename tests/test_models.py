"""Model families and the new catalog: parameter counts against the model cards, MLA's compressed
cache, windowed caches that stop growing, HuggingFace config import, expert parallelism with
data-parallel attention. Expected values are derived by hand from config.json (arithmetic shown)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import mantile
from mantile.costs.blocks import Plan
from mantile.costs.families import architecture, parameters
from mantile.specs import SpecError, load_model
from mantile.specs.catalog import load_serving
from mantile.specs.hf import load_config, model_from_config

HF = Path(__file__).parent / "data" / "hf"
B = 1e9


def test_deepseek_v3_parameters_match_the_model_card() -> None:
    # MLA per layer: q_a 7168*1536 + norm 1536 + q_b 1536*128*192 + kv_a 7168*576 + norm 512
    #   + kv_b 512*128*256 + o 128*128*7168 = 187,107,328; x 61 = 11.41B
    # MoE layer (58): 256 experts * 3*7168*2048 + shared 3*7168*2048 + router 7168*256 = 11.32B -> 656.6B
    # dense layers (3): 3*7168*18432 = 396.4M -> 1.19B; vocab 2 * 129280*7168 = 1.85B; norms 0.9M
    # total = 671.0B (model card: 671B); active: attention 11.41B + 58 * 9 experts * 44.04M = 22.99B
    # + dense 1.19B + LM head 0.93B + norms = 36.6B (card: 36.6B "including 0.9B for the output head")
    count = parameters(load_model("deepseek_v3"))
    assert count.total == pytest.approx(671.0 * B, rel=0.002)
    assert count.active == pytest.approx(36.6 * B, rel=0.005)
    # MTP: one more MoE layer (11.51B) + eh_proj 2*7168*7168 + 2 norms = 11.6B (card: 11.5B + 0.1B proj)
    assert count.mtp == pytest.approx(11.61 * B, rel=0.005)
    assert parameters(load_model("deepseek_r1")) == count
    # NVIDIA's NVFP4 releases of R1 (conf/model/deepseek_r1_fp4*.yaml) are the same shapes
    assert parameters(load_model("deepseek_r1_fp4")) == count
    assert parameters(load_model("deepseek_r1_fp4_v2")) == count


@pytest.mark.parametrize("model_id, total_b, active_b, counts_input_table", [
    # GPT-OSS card: 116.8B total, 5.13B active (LM head counted, embedding lookup not)
    ("gpt_oss_120b", 116.8, 5.13, False),
    ("gpt_oss_20b", 20.9, 3.61, False),
    # Qwen3 cards count both vocab tables among the active: 22B / 3.3B
    ("qwen3_235b_a22b", 235.0, 22.0, True),
    ("qwen3_30b_a3b", 30.5, 3.3, True),
    ("qwen3_32b", 32.8, 32.8, True),
    # Llama 4 cards: Scout 109B / 17B, Maverick 400B / 17B (text model: Scout 107.8B)
    ("llama_4_scout", 109.0, 17.0, True),
    ("llama_4_maverick", 400.0, 17.0, True),
    ("mixtral_8x22b", 141.0, 39.0, True),
    ("kimi_k2", 1040.0, 32.0, False),
    ("gemma_3_27b", 27.0, 27.0, False),
])
def test_catalog_parameters_match_model_cards(model_id: str, total_b: float, active_b: float,
                                              counts_input_table: bool) -> None:
    m = load_model(model_id)
    count = parameters(m)
    active = count.active + (m.vocab_size * m.hidden_size if counts_input_table and not m.tie_word_embeddings
                             else 0)
    assert count.total == pytest.approx(total_b * B, rel=0.02)
    assert active == pytest.approx(active_b * B, rel=0.03)


def test_gpt_oss_120b_hand_count() -> None:
    # attention: 2880*(4096+1024) + 4096*2880 + biases 5120 + sinks 64 = 26,547,264 per layer
    # experts: 128 * (3*2880*2880 + 2*2880 + 2880 biases) = 3,186,155,520, router 2880*128 + 128 = 368,768
    # two norms 2*2880; 36 layers -> 115.67B; vocab 2 * 201088*2880 = 1.158B; final norm -> 116.83B
    layer = 26_547_264 + 3_186_155_520 + 368_768 + 2 * 2880
    total = 36 * layer + 2 * 201088 * 2880 + 2880
    assert parameters(load_model("gpt_oss_120b")).total == pytest.approx(total, rel=1e-12)


def test_mla_cache_holds_latent_plus_rope_key_per_layer() -> None:
    arch = architecture(load_model("deepseek_v3"))
    # 512 (kv_lora_rank) + 64 (qk_rope_head_dim) values per token per layer, whatever tp
    for tp in (1, 8):
        assert float(arch.kv_values(Plan(tp=tp), 1, 1.0)) == 61 * (512 + 64)
    # one sequence of 1000 tokens in fp8: 61 * 576 * 1000 bytes
    row = mantile.estimate("deepseek_v3", "nvidia_h200_141gb_x2", batch_size=1, input_seq=744, output_seq=256,
                           tp=16, dtype="fp8", serving="pytorch")
    assert row["kv_cache_gb_per_device"] == pytest.approx(61 * 576 * 1000 / 1e9)


def test_sliding_window_cache_stops_growing_past_its_window() -> None:
    m = load_model("gpt_oss_120b")  # 18 sliding layers (window 128) + 18 full layers, 8 kv heads x 64
    arch, plan = architecture(m), Plan(tp=1)
    per_token_layer = 2 * 8 * 64
    small, large = (float(arch.kv_values(plan, 1, c)) for c in (100.0, 10_000.0))
    assert small == 36 * 100 * per_token_layer  # below the window every layer grows
    assert large == (18 * 10_000 + 18 * 128) * per_token_layer  # past it only the full layers grow
    mistral = load_model("llama_3.1_8b").__class__(**{**load_model("llama_3.1_8b").__dict__, "sliding_window": 4096,
                                                      "family": ""})
    arch = architecture(mistral)
    assert float(arch.kv_values(plan, 1, 8192.0)) == float(arch.kv_values(plan, 1, 4096.0))


def test_tensorrt_llm_holds_a_sliding_window_layer_at_full_length() -> None:
    """TensorRT-LLM gives each window's KV block pool an equal share of the KV memory, so its full layers'
    pool holds what all-full layers would (``Scheduler.sliding_kv_full``): GPT-OSS-120B's 18 window layers
    cost as much capacity as its 18 full ones there, and only their window under vLLM; the attention kernels
    still read only the window."""
    m = load_model("gpt_oss_120b")
    per_token_layer = 2 * 8 * 64  # fp8 KV: one byte a value
    assert float(architecture(m).kv_values(Plan(tp=1), 1, 10_000.0, sliding_full=True)) == 36 * 10_000 * per_token_layer
    kw = dict(batch_size=1, input_seq=4096, output_seq=2, kv_dtype="fp8")
    trt = mantile.estimate("gpt_oss_120b", "nvidia_b200_180gb", serving="trtllm", **kw)
    vllm = mantile.estimate("gpt_oss_120b", "nvidia_b200_180gb", serving="vllm", **kw)
    held = 4096 + 2  # TensorRT-LLM reserves input + output (kv_reserve full); vLLM holds input + output / 2
    assert trt["kv_cache_gb_per_device"] == pytest.approx(36 * held * per_token_layer / 1e9)
    assert vllm["kv_cache_gb_per_device"] == pytest.approx((18 * (4096 + 1) + 18 * 128) * per_token_layer / 1e9)
    profile = load_serving("trtllm")
    windowed = dataclasses.replace(profile, scheduler=dataclasses.replace(profile.scheduler, sliding_kv_full=False))
    bounded = mantile.estimate("gpt_oss_120b", "nvidia_b200_180gb", serving=windowed, **kw)
    assert bounded["kv_cache_gb_per_device"] == pytest.approx((18 * held + 18 * 128) * per_token_layer / 1e9)
    assert trt["decode_attention_ms"] == bounded["decode_attention_ms"]  # the kernels read the same window


def test_windowed_prefill_attends_to_fewer_keys() -> None:
    # a sliding layer of window 128 over a 4096-token prompt: mean keys per query 128 - 128*127/8192
    from mantile.costs.families.dense import attention
    sliding = attention(load_model("gpt_oss_120b"), "sliding")
    assert float(sliding.local_keys(np.asarray(4096.0))) == pytest.approx(128 - 128 * 127 / (2 * 4096))
    chunked = attention(load_model("llama_4_scout"), "chunked")  # chunks of 8192: 2 full chunks
    assert float(chunked.local_keys(np.asarray(16384.0))) == pytest.approx(8193 / 2)


def test_layer_kinds_follow_the_config() -> None:
    # Maverick: MoE on odd layers (interleave step 2), chunked attention except every 4th layer
    groups = architecture(load_model("llama_4_maverick")).groups
    assert sorted(g.count for g in groups) == [12, 12, 24]
    gemma = load_model("gemma_3_27b")  # every 6th layer global: 10 full, 52 sliding
    assert gemma.attention_layer_types.count("full_attention") == 10
    deepseek = architecture(load_model("deepseek_v3")).groups
    assert [g.count for g in deepseek] == [3, 58]  # first_k_dense_replace = 3


def test_mla_kernels_absorbed_decode_expanded_prefill() -> None:
    names = {p: [k["name"] for k in mantile.layer_metrics("deepseek_v3", "nvidia_h200_141gb", "attention", phase=p,
                                                          tp=1, kernels=True, seq_length=1024)["named_kernels"]]
             for p in ("prefill", "decode")}
    assert "kv_b_proj" in names["prefill"] and "q_absorb_uk" not in names["prefill"]
    assert {"q_absorb_uk", "out_absorb_uv"} <= set(names["decode"]) and "kv_b_proj" not in names["decode"]


def test_hf_config_gives_the_catalog_numbers() -> None:
    for model_id in ("deepseek_v3", "gpt_oss_20b"):
        local = load_config(HF / model_id / "config.json")
        assert local.__dict__ | {"name": "", "source": ""} == load_model(model_id).__dict__ | {"name": "", "source": ""}
        kw = dict(hardware="nvidia_h100_80gb_x4", batch_size=8, input_seq=1024, output_seq=128, tp=4)
        a = mantile.estimate(model_id, **kw)
        b = mantile.estimate(str(HF / model_id), **kw)
        c = mantile.estimate(json.loads((HF / model_id / "config.json").read_text()), **kw)
        for key in ("ttft_ms", "tpot_ms", "memory_gb_per_device"):
            assert a[key] == b[key] == c[key]


def test_unsupported_architecture_lists_the_supported_ones() -> None:
    with pytest.raises(SpecError) as e:
        model_from_config({"architectures": ["MambaForCausalLM"], "hidden_size": 8})
    assert "DeepseekV3ForCausalLM" in str(e.value) and "MambaForCausalLM" in str(e.value)


def test_quantization_config_sets_the_default_recipe() -> None:
    kw = dict(hardware="nvidia_h100_80gb_x4", batch_size=8, input_seq=1024, output_seq=128, tp=4)
    assert mantile.estimate("deepseek_v3", hardware="nvidia_b200_180gb_x4", batch_size=1, input_seq=1024,
                            output_seq=128, tp=4, ep=4)["dtype"] == "fp8"
    gpt = mantile.estimate("gpt_oss_20b", **kw)
    bf16 = mantile.estimate("gpt_oss_20b", dtype="bf16", **kw)
    # mxfp4 experts (0.5 byte) instead of bf16 (2 bytes): the expert weights shrink by 4x
    assert gpt["weights_gb_per_device"] < 0.5 * bf16["weights_gb_per_device"]


def test_user_catalog_adds_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "model").mkdir()
    text = Path(mantile.specs.conf_dir() / "model" / "llama_3.1_8b.yaml").read_text()
    (tmp_path / "model" / "my_llama.yaml").write_text(text.replace("Llama 3.1 8B", "My Llama"))
    monkeypatch.setenv("MANTILE_CATALOG", str(tmp_path))
    assert "my_llama" in mantile.specs.ids("model")
    kw = dict(hardware="nvidia_h100_80gb", batch_size=4, input_seq=512, output_seq=64)
    assert mantile.estimate("my_llama", **kw)["tpot_ms"] == mantile.estimate("llama_3.1_8b", **kw)["tpot_ms"]


def test_wide_ep_with_dp_attention_on_nvl72() -> None:
    rows = [mantile.estimate("deepseek_v3", "nvidia_nvl72_rack", batch_size=1024, input_seq=2048, output_seq=256,
                             ep=ep, dp_attention=True, dtype="fp8", redundant_experts=32 if ep == 72 else 0)
            for ep in (8, 32, 72)]
    assert all(r["valid"] for r in rows)
    assert [r["num_devices"] for r in rows] == [8, 32, 72]
    share = [r["decode_comm_ms"] / r["tpot_ms"] for r in rows]
    assert len(set(np.round(share, 6))) == 3  # the decode communication share moves with ep
    # more expert devices hold fewer experts: weights per device fall
    assert rows[0]["weights_gb_per_device"] > rows[1]["weights_gb_per_device"] > rows[2]["weights_gb_per_device"]


def test_dp_attention_keeps_each_ranks_own_cache() -> None:
    kw = dict(hardware="nvidia_h200_141gb_x2", batch_size=64, input_seq=1024, output_seq=1024, ep=16, tp=16,
              dtype="fp8", serving="pytorch")
    tp_attn = mantile.estimate("deepseek_v3", **kw)
    dp_attn = mantile.estimate("deepseek_v3", dp_attention=True, **kw)
    # tp attention replicates the MLA latent on all 16 ranks; dp attention keeps 64/16 = 4 sequences each
    assert tp_attn["kv_cache_gb_per_device"] == pytest.approx(64 * 2048 * 61 * 576 / 1e9)
    assert dp_attn["kv_cache_gb_per_device"] == pytest.approx(4 * 2048 * 61 * 576 / 1e9)


def test_expert_imbalance_slows_the_moe() -> None:
    kw = dict(hardware="nvidia_nvl72_rack", batch_size=512, input_seq=1024, output_seq=128, ep=32,
              dp_attention=True, dtype="fp8")
    even = mantile.estimate("deepseek_v3", **kw)
    skewed = mantile.estimate("deepseek_v3", expert_imbalance=1.5, **kw)
    assert skewed["prefill_feedforward_ms"] > even["prefill_feedforward_ms"]


def test_cli_takes_a_config_directory_and_a_sweep_with_it(run_cli, tmp_path: Path) -> None:
    import polars as pl

    common = ["hardware=nvidia_h100_80gb_x4", "tp=4", "batch_size=8", "input_seq=1024", "output_seq=128",
              "dtype=bf16", "executor.progress=false"]
    local = run_cli("mantile", f"model={HF / 'gpt_oss_20b'}", *common, "hydra.run.dir=local")
    catalog = run_cli("mantile", "model=gpt_oss_20b", *common, "hydra.run.dir=catalog")
    swept = run_cli("mantile", "-m", f"model=qwen3_32b,{HF / 'deepseek_v3'}", *common, "hydra.sweep.dir=sweep")
    for p in (local, catalog, swept):
        assert p.returncode == 0, p.stderr
    a, b = (pl.read_parquet(tmp_path / d / "results.parquet") for d in ("local", "catalog"))
    assert a["model_id"][0] == "hf_gpt_oss_20b"
    for key in ("ttft_ms", "tpot_ms", "memory_gb_per_device"):
        assert a[key][0] == b[key][0]
    merged = pl.read_parquet(tmp_path / "sweep" / "results.parquet")
    assert sorted(merged["model_id"].cast(pl.String).to_list()) == ["hf_deepseek_v3", "qwen3_32b"]


def test_http_takes_an_inline_config() -> None:
    import warnings

    from mantile.api.app import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from fastapi.testclient import TestClient
    config = json.loads((HF / "gpt_oss_20b" / "config.json").read_text())
    body = {"hardware_config": "nvidia_h100_80gb_x4", "batch_size": 8, "input_seq": 1024, "output_seq": 128,
            "layers": {"attention": {"tensor_parallel": 4}}}
    with TestClient(create_app()) as client:
        inline = client.post("/config/system-metrics", json={**body, "model_id": "mine", "model": config})
        catalog = client.post("/config/system-metrics", json={**body, "model_id": "gpt_oss_20b"})
        bad = client.post("/config/system-metrics",
                          json={**body, "model_id": "x", "model": {"architectures": ["Nope"]}})
    assert inline.status_code == 200 and catalog.status_code == 200
    for key in ("ttft_ms", "tpot_ms", "memory_gb_per_device"):
        assert inline.json()[key] == catalog.json()[key]
    assert bad.status_code == 422 and "DeepseekV3ForCausalLM" in bad.text


def test_dense_layers_of_an_moe_model_split_over_the_whole_tp_group() -> None:
    # DeepSeek's 3 dense layers (MLP 3 * 7168 * 18432 = 396.4M params) are split over tp = 8 even with
    # ep = 8: 49.5M per device each, not 396.4M (tp / ep = 1)
    from mantile.costs import memory
    from mantile.costs.blocks import Placement
    from mantile.costs.feedforward import DenseMLP

    arch = architecture(load_model("deepseek_v3"))
    dense = next(b for b, _ in arch.layer_blocks() if isinstance(b, DenseMLP))
    plan = memory.block_plan(dense, Placement(8, 8, 0), 8)
    assert float(dense.params(plan)) == pytest.approx(3 * 7168 * 18432 / 8)


def test_a_modelopt_nvfp4_config_imports_its_excluded_projections() -> None:
    """A TensorRT Model Optimizer config.json (quant_method modelopt, quant_algo NVFP4) is the nvfp4 recipe,
    and its exclude_modules name the projections left in bf16: the same numbers as the catalog's
    deepseek_r1_fp4_v2, whose file lists them by hand. A wildcard over self_attn excludes all of attention;
    on a model without MLA the list is an error, not silently ignored."""
    import yaml

    from mantile.specs.hf import quantization_excludes
    card = yaml.safe_load((mantile.specs.conf_dir() / "model" / "deepseek_r1_fp4_v2.yaml").read_text())
    config = {k: v for k, v in card.items() if k not in ("name", "source", "family", "quantization",
                                                          "quantization_excludes")}
    config.update(architectures=["DeepseekV3ForCausalLM"], n_routed_experts=config.pop("num_local_experts"),
                  quantization_config={"quant_method": "modelopt", "quant_algo": "NVFP4", "exclude_modules": [
                      "lm_head", *(f"model.layers.{i}.self_attn.{m}" for i in range(61)
                                   for m in ("q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj"))]})
    kw = dict(hardware="nvidia_b200_180gb", tp=8, batch_size=4, input_seq=1024, output_seq=128, serving="trtllm")
    imported, catalog = mantile.estimate(config, **kw), mantile.estimate("deepseek_r1_fp4_v2", **kw)
    for key in ("tpot_ms", "ttft_ms", "weights_gb_per_device"):
        assert imported[key] == catalog[key]
    assert quantization_excludes(["model.layers.0.self_attn*"]) == (
        "q_a_proj", "q_b_proj", "q_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj")
    with pytest.raises(SpecError) as e:
        dataclasses.replace(load_model("llama_3.1_8b"), quantization_excludes=("o_proj",))
    assert "quantization_excludes" in str(e.value) and "kv_lora_rank" in str(e.value)
