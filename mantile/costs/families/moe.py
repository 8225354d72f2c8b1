"""Mixture-of-experts transformers (Mixtral): the dense layer with the MLP replaced by top-k routed
experts in every layer."""

from __future__ import annotations

from mantile.costs.families.base import Architecture, LayerGroup
from mantile.costs.families.dense import attention, ends
from mantile.costs.feedforward import MoEMLP
from mantile.specs.model import ModelSpec


def build(model: ModelSpec) -> Architecture:
    embedding, norm, final = ends(model)
    experts = MoEMLP(model.hidden_size, model.intermediate_size, model.is_gated, model.num_local_experts,
                     model.num_experts_per_tok)
    layer = LayerGroup(((attention(model), 1), (experts, 1), (norm, 2)), model.num_hidden_layers)
    return Architecture(embedding, (layer,), final)
