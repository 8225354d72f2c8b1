"""Dense decoder-only transformers (Llama, Qwen2.5, TinyLlama): per layer a pre-norm, GQA attention,
a pre-norm and a gated (or plain) MLP, each norm followed by its residual add."""

from __future__ import annotations

from mantile.costs.attention import GQAAttention
from mantile.costs.blocks import Embedding, FinalNorm, Norm
from mantile.costs.families.base import Architecture, LayerGroup
from mantile.costs.feedforward import DenseMLP
from mantile.specs.model import ModelSpec


def attention(model: ModelSpec) -> GQAAttention:
    return GQAAttention(model.hidden_size, model.num_attention_heads, model.num_key_value_heads, model.head_dim,
                        model.attention_bias)


def ends(model: ModelSpec) -> tuple[Embedding, Norm, FinalNorm]:
    """The embedding (+ LM head), the per-layer norm and the final norm every family shares."""
    return (Embedding(model.hidden_size, model.vocab_size, model.tie_word_embeddings),
            Norm(model.hidden_size, model.norm_params), FinalNorm(model.hidden_size, model.norm_params))


def build(model: ModelSpec) -> Architecture:
    embedding, norm, final = ends(model)
    mlp = DenseMLP(model.hidden_size, model.intermediate_size, model.is_gated)
    layer = LayerGroup(((attention(model), 1), (mlp, 1), (norm, 2)), model.num_hidden_layers)
    return Architecture(embedding, (layer,), final)
