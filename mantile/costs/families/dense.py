"""Dense decoder-only transformers (Llama, Qwen2.5/3, TinyLlama, Gemma 3): per layer a pre-norm, GQA
attention, a pre-norm and a gated (or plain) MLP, each norm followed by its residual add. Layers may
differ in their attention window (``ModelSpec.attention_layer_types``: Gemma 3's five sliding layers
per full one); each kind is one ``LayerGroup``."""

from __future__ import annotations

from mantile.costs.attention import GQAAttention
from mantile.costs.blocks import Block, Embedding, FinalNorm, Norm
from mantile.costs.families.base import Architecture, groups_of
from mantile.costs.feedforward import DenseMLP
from mantile.specs.model import ModelSpec


def attention(model: ModelSpec, kind: str = "full") -> GQAAttention:
    """GQA attention of a layer kind: 'full', 'sliding' (window = sliding_window) or 'chunked'
    (window = attention_chunk_size)."""
    window = {"full": 0, "sliding": model.sliding_window, "chunked": model.attention_chunk_size}[kind]
    return GQAAttention(model.hidden_size, model.num_attention_heads, model.num_key_value_heads, model.head_dim,
                        model.attention_bias, window=window, kind=kind if window else "full",
                        sinks=model.attention_sinks, qk_norm=model.qk_norm)


def ends(model: ModelSpec) -> tuple[Embedding, Norm, FinalNorm]:
    """The embedding (+ LM head), the per-layer norm and the final norm every family shares."""
    return (Embedding(model.hidden_size, model.vocab_size, model.tie_word_embeddings),
            Norm(model.hidden_size, model.norm_params), FinalNorm(model.hidden_size, model.norm_params))


def dense_mlp(model: ModelSpec) -> DenseMLP:
    """The dense MLP (of an MoE model's dense layers: ``intermediate_size_mlp`` when given)."""
    return DenseMLP(model.hidden_size, model.intermediate_size_mlp or model.intermediate_size, model.is_gated)


def build(model: ModelSpec) -> Architecture:
    embedding, norm, final = ends(model)
    mlp = dense_mlp(model)

    def layer(kind: str, moe: bool) -> tuple[tuple[Block, int], ...]:
        return ((attention(model, kind), 1), (mlp, 1), (norm, model.norms_per_layer))

    return Architecture(embedding, groups_of(model, layer), final)
