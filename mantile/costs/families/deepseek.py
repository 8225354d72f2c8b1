"""DeepSeek-V2/V3 and Kimi K2: multi-head latent attention (``costs.mla``) in every layer, DeepSeekMoE
(routed experts of ``moe_intermediate_size`` plus ``n_shared_experts`` shared ones) after the first
``first_k_dense_replace`` dense layers (MLP of ``intermediate_size``), and
``num_nextn_predict_layers`` multi-token-prediction modules held with the weights.

Source: DeepSeek-V3 technical report (arXiv:2412.19437) §2.1-2.2; ``modeling_deepseek.py``
(DeepseekV3DecoderLayer: MoE where layer_idx >= first_k_dense_replace and layer_idx % moe_layer_freq
== 0); the MTP module's weights (README_WEIGHTS.md of deepseek-ai/DeepSeek-V3: one extra decoder layer,
enorm, hnorm and eh_proj; embedding and head shared).
"""

from __future__ import annotations

from mantile.costs.blocks import Block, MTPHead
from mantile.costs.families.base import Architecture, groups_of
from mantile.costs.families.dense import dense_mlp, ends
from mantile.costs.families.moe import experts
from mantile.costs.mla import MLAAttention
from mantile.specs.model import ModelSpec


def mla(model: ModelSpec) -> MLAAttention:
    return MLAAttention(model.hidden_size, model.num_attention_heads, model.q_lora_rank, model.kv_lora_rank,
                        model.qk_nope_head_dim, model.qk_rope_head_dim, model.v_head_dim,
                        frozenset(model.quantization_excludes))


def build(model: ModelSpec) -> Architecture:
    embedding, norm, final = ends(model)
    attention, routed, dense = mla(model), experts(model), dense_mlp(model)

    def layer(kind: str, moe: bool) -> tuple[tuple[Block, int], ...]:
        return ((attention, 1), (routed if moe else dense, 1), (norm, model.norms_per_layer))

    n = model.num_nextn_predict_layers
    mtp: tuple[tuple[Block, int], ...] = ()
    if n:
        mtp = (*layer("full", model.is_moe), (MTPHead(model.hidden_size), 1))
        mtp = tuple((block, times * n) for block, times in mtp)
    return Architecture(embedding, groups_of(model, layer), final, mtp)
