"""Mixture-of-experts transformers with GQA attention: Mixtral (every layer top-k of E experts),
Qwen3-MoE (``moe_intermediate_size``), Llama 4 (one shared expert, MoE every
``interleave_moe_layer_step``-th layer, dense layers of ``intermediate_size_mlp`` between, chunked
attention on three layers of four), GPT-OSS (alternating sliding/full attention with sinks, expert
and router biases). Dense layers first (``first_k_dense_replace``) are dense-MLP groups."""

from __future__ import annotations

from mantile.costs.blocks import Block
from mantile.costs.families.base import Architecture, groups_of
from mantile.costs.families.dense import attention, dense_mlp, ends
from mantile.costs.feedforward import MoEMLP
from mantile.specs.model import ModelSpec


def experts(model: ModelSpec) -> MoEMLP:
    """Routed experts of width moe_intermediate_size (else intermediate_size), plus n_shared_experts
    shared experts of the same width."""
    width = model.moe_intermediate_size or model.intermediate_size
    return MoEMLP(model.hidden_size, width, model.is_gated, model.num_local_experts, model.num_experts_per_tok,
                  shared_size=model.n_shared_experts * width, bias=model.model_type == "gpt_oss")


def build(model: ModelSpec) -> Architecture:
    embedding, norm, final = ends(model)
    routed, dense = experts(model), dense_mlp(model)

    def layer(kind: str, moe: bool) -> tuple[tuple[Block, int], ...]:
        return ((attention(model, kind), 1), (routed if moe else dense, 1), (norm, model.norms_per_layer))

    return Architecture(embedding, groups_of(model, layer), final)
