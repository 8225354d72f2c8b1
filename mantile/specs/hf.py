"""HuggingFace ``config.json`` -> ``ModelSpec``: the architecture from ``architectures`` / ``model_type``,
HF field names kept, keys Mantile does not use ignored, ``quantization_config`` as the default recipe.

Local files only: a path to a ``config.json``, a model directory holding one, or a hub id
(``org/name``) found in the local hub cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
``~/.cache/huggingface/hub``); nothing is downloaded.

Family defaults that a config.json leaves to its transformers config class (cited there):
Llama 4 has one shared expert per MoE layer and chunked attention on the layers with RoPE, every
``no_rope_layer_interval`` (4) th layer global (``configuration_llama4.py``); Gemma 3 ties its
embeddings, uses a gated GELU MLP, four norms per layer, q/k norms, every 6th layer global and a
vocabulary of 262208 (``configuration_gemma3.py``); GPT-OSS has attention sinks (``modeling_gpt_oss.py``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mantile.specs._load import build
from mantile.specs.errors import SpecError
from mantile.specs.model import QUANTIZATION_EXCLUDABLE, ModelSpec

#: HF ``architectures`` entry -> Mantile family (mantile/costs/families/).
ARCHITECTURES: dict[str, str] = {
    "LlamaForCausalLM": "dense", "MistralForCausalLM": "dense", "Qwen2ForCausalLM": "dense",
    "Qwen3ForCausalLM": "dense", "Gemma3ForCausalLM": "dense", "Gemma3ForConditionalGeneration": "dense",
    "MixtralForCausalLM": "moe", "Qwen3MoeForCausalLM": "moe", "GptOssForCausalLM": "moe",
    "Llama4ForCausalLM": "moe", "Llama4ForConditionalGeneration": "moe",
    "DeepseekV2ForCausalLM": "deepseek", "DeepseekV3ForCausalLM": "deepseek",
}
#: HF ``model_type`` -> Mantile family (when ``architectures`` is absent).
MODEL_TYPES: dict[str, str] = {
    "llama": "dense", "mistral": "dense", "qwen2": "dense", "qwen3": "dense", "gemma3": "dense",
    "gemma3_text": "dense", "mixtral": "moe", "qwen3_moe": "moe", "gpt_oss": "moe", "llama4": "moe",
    "llama4_text": "moe", "deepseek_v2": "deepseek", "deepseek_v3": "deepseek", "kimi_k2": "deepseek",
}
#: HF names -> ModelSpec names.
RENAMES = {"num_experts": "num_local_experts", "n_routed_experts": "num_local_experts",
           "hidden_activation": "hidden_act", "decoder_sparse_step": "interleave_moe_layer_step",
           "moe_layer_freq": "interleave_moe_layer_step"}


def quantization_excludes(patterns: Any) -> tuple[str, ...]:
    """The modules of ``QUANTIZATION_EXCLUDABLE`` that a quantization config's exclude list (ModelOpt
    ``exclude_modules``, compressed-tensors ``ignore``: module names or wildcards such as
    ``model.layers.0.self_attn*``) leaves in 16 bits, in any layer; other entries (lm_head, gates, the
    MTP layer) Mantile does not cost apart."""
    found: set[str] = set()
    for pattern in patterns if isinstance(patterns, (list, tuple)) else ():
        text = str(pattern)
        name = text.rstrip("*").rsplit(".", 1)[-1]
        if name in QUANTIZATION_EXCLUDABLE:
            found.add(name)
        elif text.rstrip("*").endswith("self_attn"):  # the whole attention block
            found.update(QUANTIZATION_EXCLUDABLE)
    return tuple(m for m in QUANTIZATION_EXCLUDABLE if m in found)


def supported() -> list[str]:
    return sorted(ARCHITECTURES)


def _text(config: Mapping[str, Any]) -> dict[str, Any]:
    """A multimodal config's text part, with the top-level identity and quantization kept."""
    out = dict(config)
    if isinstance(config.get("text_config"), Mapping):
        out.update(config["text_config"])
        for key in ("architectures", "quantization_config", "tie_word_embeddings"):
            if key in config:
                out[key] = config[key]
        out["model_type"] = config.get("model_type", out.get("model_type"))
    return out


def family_of(config: Mapping[str, Any], where: str = "config.json") -> str:
    archs = [a for a in config.get("architectures") or [] if a in ARCHITECTURES]
    if archs:
        return ARCHITECTURES[archs[0]]
    if config.get("model_type") in MODEL_TYPES:
        return MODEL_TYPES[str(config["model_type"])]
    given = config.get("architectures") or config.get("model_type")
    raise SpecError(where, "architectures", given, f"a supported architecture: {supported()}")


def _family_defaults(c: dict[str, Any]) -> None:
    kind = str(c.get("model_type", ""))
    if kind.startswith("llama4"):
        c.setdefault("n_shared_experts", 1)
        if c.get("attention_chunk_size"):
            c.setdefault("no_rope_layer_interval", 4)
            if c.get("no_rope_layers"):
                c["layer_types"] = ["chunked_attention" if r else "full_attention" for r in c["no_rope_layers"]]
    if kind.startswith("gemma3"):
        c.setdefault("tie_word_embeddings", True)
        c.setdefault("vocab_size", 262208)
        c.setdefault("max_position_embeddings", 131072)
        c.setdefault("hidden_act", c.get("hidden_activation", "gelu_pytorch_tanh"))
        c.setdefault("sliding_window", 4096)
        if not c.get("layer_types"):
            c.setdefault("sliding_window_pattern", 6)
        c.update(mlp_gated=True, norms_per_layer=4, qk_norm=True)
    if kind in ("qwen3", "qwen3_moe"):
        c["qk_norm"] = True
    if kind == "gpt_oss":
        c["attention_sinks"] = True
    if c.get("use_sliding_window") is False:
        c.pop("sliding_window", None)


def spec_dict(config: Mapping[str, Any], name: str = "", where: str = "config.json") -> dict[str, Any]:
    """The ModelSpec fields of an HF config (see module docstring)."""
    c = _text(config)
    family = family_of(c, where)
    c = {RENAMES.get(k, k): v for k, v in c.items() if v is not None}
    for old, new in RENAMES.items():  # a renamed key never overrides the ModelSpec name itself
        if old in config and new in config and config[new] is not None:
            c[new] = config[new]
    _family_defaults(c)
    qc = config.get("quantization_config") or {}
    quant = qc.get("quant_method")
    if quant:
        # TensorRT Model Optimizer writes quant_method "modelopt" with the format in quant_algo
        c["quantization"] = "nvfp4" if quant == "modelopt" and qc.get("quant_algo") == "NVFP4" else str(quant)
    excluded = quantization_excludes(qc.get("exclude_modules") or qc.get("ignore") or ())
    if excluded and family == "deepseek":  # Mantile costs the MLA projections apart (costs.mla)
        c["quantization_excludes"] = excluded
    block = (config.get("quantization_config") or {}).get("weight_block_size")
    if isinstance(block, (list, tuple)) and block:
        c["weight_block_size"] = int(block[0])
    c["family"] = family
    c["name"] = name or str(config.get("_name_or_path") or c.get("model_type") or "hf model")
    fields = ModelSpec.__dataclass_fields__
    return {k: v for k, v in c.items() if k in fields}


def model_from_config(config: Mapping[str, Any], name: str = "", where: str = "config.json") -> ModelSpec:
    if not isinstance(config, Mapping):
        raise SpecError(where, "model", config, "a HuggingFace config.json mapping")
    return build(ModelSpec, spec_dict(config, name, where), where)


def hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    return home / "hub"


def config_path(ref: str) -> Path | None:
    """The local config.json a model reference names (a file, a directory, or a hub id in the local
    hub cache), or None."""
    path = Path(ref).expanduser()
    if path.is_file():
        return path
    if (path / "config.json").is_file():
        return path / "config.json"
    if ref.count("/") == 1 and not path.exists():
        snapshots = hub_cache() / f"models--{ref.replace('/', '--')}" / "snapshots"
        found = sorted(snapshots.glob("*/config.json"), key=lambda p: p.stat().st_mtime) if snapshots.is_dir() else []
        if found:
            return found[-1]
    return None


def model_id_of(path: Path) -> str:
    """An id for a local config: its directory's name (hub snapshots: the repo name), else the file stem."""
    folder = path.parent
    if folder.parent.name == "snapshots":
        return folder.parent.parent.name.split("--")[-1]
    return folder.name if path.name == "config.json" else path.stem


def load_config(path: Path) -> ModelSpec:
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SpecError(str(path), "model", str(path), f"a readable config.json ({e})") from None
    return model_from_config(config, model_id_of(path), str(path))
