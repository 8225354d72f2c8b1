"""The catalog as the HTTP API sees it: loaded once at start-up, read-only afterwards.

``Catalog.load()`` reads every model, hardware system, efficiency profile and serving profile through
``mantile.specs`` (which caches them per process), so no request reads a file and concurrent requests
only read immutable objects. Summaries are catalog data (datasheet and architecture numbers), not
metrics: every metric comes from ``mantile.estimate`` / ``mantile.layer_metrics``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mantile.costs.families import parameters
from mantile.costs.memory import layer_params
from mantile.estimator import PLAN_KEYS
from mantile.specs import (
    HardwareSpec,
    ModelSpec,
    SpecError,
    ids,
    load_efficiency,
    load_hardware,
    load_model,
    load_serving,
)

#: What each parallelism key of the ``layers`` body accepts (enforced by ``mantile.estimate``).
PARALLELISM_RULES: dict[str, dict[str, str]] = {
    "attention": {
        "tensor_parallel": "divides num_attention_heads; divides or is a multiple of num_key_value_heads",
        "context_parallel": "splits each sequence's tokens (prefill) / KV cache (decode) over devices",
    },
    "feedforward": {
        "tensor_parallel": "attention.tensor_parallel / expert_parallel",
        "sequence_parallel": "1, or attention.tensor_parallel (Megatron sequence parallel)",
        "expert_parallel": "MoE only: divides tensor_parallel and num_local_experts",
    },
    "norm": {"tensor_parallel": "1 (replicated), or attention.tensor_parallel (sequence parallel)"},
    "embedding": {"tensor_parallel": "vocab-parallel degree; divides attention tp x context_parallel"},
}


def _layer_counts(m: ModelSpec) -> dict[str, int]:
    """Instances per layer type: L attention, L feedforward, 2L + 1 norms (two per block + final), 1
    embedding (with the LM head). Same counts as ``mantile.layer_metrics(...)['count']``."""
    return {"attention": m.num_hidden_layers, "feedforward": m.num_hidden_layers,
            "norm": 2 * m.num_hidden_layers + 1, "embedding": 1}


def _layer_specs(m: ModelSpec) -> dict[str, dict[str, Any]]:
    return {
        "attention": {"hidden_size": m.hidden_size, "num_attention_heads": m.num_attention_heads,
                      "num_key_value_heads": m.num_key_value_heads, "head_dim": m.head_dim,
                      "attention_bias": m.attention_bias,
                      "params_per_layer": int(layer_params(m, "attention"))},
        "feedforward": {"hidden_size": m.hidden_size, "intermediate_size": m.intermediate_size,
                        "hidden_act": m.hidden_act, "mlp_gated": m.mlp_gated,
                        "num_local_experts": m.num_local_experts,
                        "num_experts_per_tok": m.num_experts_per_tok,
                        "params_per_layer": int(layer_params(m, "feedforward"))},
        "norm": {"hidden_size": m.hidden_size, "norm_type": m.norm_type, "params_per_layer": m.norm_params},
        "embedding": {"vocab_size": m.vocab_size, "hidden_size": m.hidden_size,
                      "tie_word_embeddings": m.tie_word_embeddings, "params": m.embedding_params},
    }


def model_summary(model_id: str, m: ModelSpec) -> dict[str, Any]:
    count = parameters(m)
    return {
        "model_id": model_id, "name": m.name, "total_params": int(count.total),
        "active_params": int(count.active),
        "hidden_size": m.hidden_size, "num_hidden_layers": m.num_hidden_layers,
        "num_attention_heads": m.num_attention_heads, "num_key_value_heads": m.num_key_value_heads,
        "head_dim": m.head_dim, "intermediate_size": m.intermediate_size, "vocab_size": m.vocab_size,
        "max_position_embeddings": m.max_position_embeddings, "num_local_experts": m.num_local_experts,
        "num_experts_per_tok": m.num_experts_per_tok, "is_moe": m.is_moe, "source": m.source,
    }


def hardware_summary(hardware_id: str, hw: HardwareSpec) -> dict[str, Any]:
    d, ic = hw.device, hw.interconnect
    return {
        "hardware_id": hardware_id, "name": hw.name, "num_devices": hw.num_devices, "device_name": d.name,
        "vendor": d.vendor, "generation": d.generation, "memory_gib_per_device": d.memory_gib,
        "hbm_bandwidth_tb_per_s": d.hbm_bandwidth_tb_per_s, "peak_bf16_tflops": d.peak_tflops.get("bf16"),
        "peak_tflops": dict(d.peak_tflops), "scale_up_domain_size": ic.scale_up.domain_size,
        "scale_up_bandwidth_gb_per_s_per_device": ic.scale_up.bandwidth_gb_per_s_per_device,
        "scale_out_bandwidth_gb_per_s_per_device": ic.scale_out.bandwidth_gb_per_s_per_device,
    }


def layer_categories(m: ModelSpec) -> list[dict[str, Any]]:
    counts, specs = _layer_counts(m), _layer_specs(m)
    out = []
    for kind, keys in PLAN_KEYS.items():
        par = [k for k in keys if k != "dtype" and (k != "expert_parallel" or m.is_moe)]
        out.append({"name": kind, "count": counts[kind], "specs": specs[kind], "available_parallelism": par,
                    "parallelism_rules": {k: PARALLELISM_RULES[kind][k] for k in par}})
    return out


@dataclass(frozen=True)
class Catalog:
    """Every id the API accepts, with its spec and summary, loaded once."""

    models: dict[str, ModelSpec]
    hardware: dict[str, HardwareSpec]
    servings: tuple[str, ...]

    @classmethod
    def load(cls) -> Catalog:
        models = {i: load_model(i) for i in ids("model")}
        hardware = {i: load_hardware(i) for i in ids("hardware")}
        for hw in hardware.values():
            load_efficiency(hw.device.generation)  # warm the per-process cache before any request
        servings = tuple(ids("serving"))
        for s in servings:
            load_serving(s)
        return cls(models, hardware, servings)

    def model(self, model_id: str, where: str = "body") -> ModelSpec:
        """The spec of a model id; an unknown id is a SpecError naming the valid ids."""
        if model_id not in self.models:
            raise SpecError(where, "model_id", model_id, sorted(self.models))
        return self.models[model_id]

    def hardware_spec(self, hardware_id: str) -> HardwareSpec:
        if hardware_id not in self.hardware:
            raise SpecError("body", "hardware_config", hardware_id, sorted(self.hardware))
        return self.hardware[hardware_id]

    def serving(self, serving_id: str) -> str:
        if serving_id not in self.servings:
            raise SpecError("body", "serving", serving_id, self.servings)
        return serving_id
