"""Memory per device: weights, KV cache, activations, communication buffers.

Everything is bytes on the busiest device of a replica (the pipeline stage holding the most).
Formulas (all per device):
- weights = ceil(L/pp)/L * sum over the decoder blocks (params per device x bytes) + vocab tables, where a
  vocab table is V*h/tp_emb; with pp = 1 an untied model holds both the embedding and the LM head,
  with pp > 1 the first stage holds the embedding and the last the LM head (one table each).
  K/V projection weights are replicated when tp > kv heads.
- kv_cache = batch * KV values of one sequence of input_seq + output_seq tokens (the blocks' sum over
  the busiest stage's layers: 2 * kv_heads_dev * head_dim per token of a GQA layer, up to its window
  for a sliding or chunked layer; kv_lora_rank + qk_rope_head_dim per token of an MLA layer) *
  kv_bytes / cp. With data-parallel attention (``blocks.Placement``) a device holds the cache of its
  attention group's ceil(batch / attention_dp) sequences.
- multi-token-prediction modules (DeepSeek-V3 MTP) are held in full on the busiest device.
- activations: the transient peak of one layer while prefilling one chunk of at most
  ``max_prefill_tokens`` tokens (engines chunk long prefills): residual + normed input (2h), QKV out,
  MLP intermediate (up to 3 f/tp), per token, plus fp32 logits of the sampled rows.
- comm buffers: send + receive staging of one layer output (2 * tokens * h) when tp > 1.
"""

from __future__ import annotations

import numpy as np

from mantile.costs.blocks import Block, Placement, Plan
from mantile.costs.families import architecture
from mantile.costs.kernels import Array
from mantile.specs.dtypes import unquantized_bytes
from mantile.specs.model import ModelSpec


def layer_params(model: ModelSpec, layer_type: str, tp: Array = 1, ep: Array = 1) -> Array:
    """Parameters of ONE instance of a layer type held by one device (the model's first block of that
    type; the embedding: one V x h table over tp)."""
    arch, plan = architecture(model), Plan(tp=tp, ep=ep, tp_emb=tp)
    if layer_type == "embedding":
        return arch.embedding.params(plan)
    for block, _ in arch.layer_blocks():
        if block.layer_type == layer_type:
            return np.asarray(block.params(plan), dtype=float)
    return np.asarray(0.0)


def block_plan(block: Block, placement: Placement, tp_emb: Array, redundant_experts: Array = 0) -> Plan:
    """How one device's share of ``block`` is cut (``blocks.Placement``): expert-parallel blocks over the
    replica's R devices (experts over ep), every other block over its attention group."""
    if getattr(block, "expert_parallel", False):
        return Plan(tp=placement.devices, ep=placement.ep, tp_emb=tp_emb, redundant_experts=redundant_experts,
                    group_tp=placement.attention_tp)
    return Plan(tp=placement.attention_tp, ep=1, tp_emb=tp_emb)


def weight_bytes(model: ModelSpec, tp: Array, ep: Array, tp_emb: Array, pp: Array, w_bytes: Array,
                 w_bytes_attn: Array | None = None, w_bytes_ffn: Array | None = None, dp_attention: Array = 0,
                 redundant_experts: Array = 0, mtp_loaded: Array = 0.0) -> Array:
    """Weight bytes on the busiest device (see module docstring): each block's parameters times the
    bytes of its layer type's dtype (``w_bytes`` for norms and vocab tables). The multi-token-prediction
    modules count where ``mtp_loaded`` is 1: engines load them only to speculate with them (vLLM's
    DeepSeek loader skips the checkpoint's MTP layer otherwise; TensorRT-LLM and SGLang alike), and
    DeepSeek-V3's is 11.6B parameters, 2.9 GB a GPU at fp8 over four."""
    arch = architecture(model)
    placement = Placement(tp, ep, dp_attention)
    classic = Plan(tp=tp, ep=ep, tp_emb=tp_emb)
    wide = bool(model.is_moe or np.any(np.asarray(dp_attention) > 0) or np.any(np.asarray(ep) > np.asarray(tp))
                or np.any(np.asarray(redundant_experts) > 0))
    per_type = {"attention": w_bytes if w_bytes_attn is None else w_bytes_attn,
                "feedforward": w_bytes if w_bytes_ffn is None else w_bytes_ffn, "norm": w_bytes,
                "embedding": w_bytes}
    layers: Array = 0.0
    for block, times in arch.layer_blocks():
        plan = block_plan(block, placement, tp_emb, redundant_experts) if wide else classic
        layers = layers + times * _block_bytes(block, plan, per_type[block.layer_type])
    tables = np.where((pp == 1) & (not model.tie_word_embeddings), 2.0, 1.0)
    vocab = tables * arch.embedding.params(classic) * w_bytes
    total = arch.stage_sum(pp, layers) + vocab + arch.final_norm.params(classic) * w_bytes
    for block, times in arch.mtp if np.any(mtp_loaded) else ():
        plan = block_plan(block, placement, tp_emb, redundant_experts) if wide else classic
        total = total + mtp_loaded * times * _block_bytes(block, plan, per_type[block.layer_type])
    return total


def _block_bytes(block: Block, plan: Plan, w_bytes: Array) -> Array:
    """A block's weight bytes on one device: its parameters at its layer type's bytes, and the modules the
    checkpoint leaves in 16 bits (``ModelSpec.quantization_excludes``) at bf16's."""
    total = block.params(plan) * w_bytes
    unquantized = getattr(block, "unquantized_params", None)
    if unquantized is not None:
        total = total + unquantized(plan) * (unquantized_bytes(w_bytes) - w_bytes)
    return total


def kv_cache_bytes(model: ModelSpec, batch: Array, context: Array, tp: Array, pp: Array, cp: Array,
                   kv_bytes: Array, sliding_full: bool = False) -> Array:
    """KV cache of ``batch`` sequences of ``context`` tokens on one device whose attention is split over
    ``tp`` devices (the attention group's tp; ``Placement.group_batch`` gives its batch). ``sliding_full``:
    the engine holds a sliding-window layer's cache at full length (``Scheduler.sliding_kv_full``)."""
    values = architecture(model).kv_values(Plan(tp=tp), pp, context, sliding_full)
    return batch * values * kv_bytes / cp


def activation_per_token(model: ModelSpec, tp: Array, ep: Array, cp: Array, a_bytes: Array) -> Array:
    """Transient activation + comm-buffer bytes per prefill token on one device (see module doc):
    residual + normed input (2h) plus each block's share, for the largest decoder layer."""
    arch, plan = architecture(model), Plan(tp=tp, ep=ep, cp=cp)
    per_token: Array = 0.0
    for group in arch.groups:
        layer: Array = 2 * model.hidden_size
        for block, _ in group.blocks:
            layer = layer + block.activation_values_per_token(plan)
        per_token = np.maximum(per_token, layer)
    buffers = np.where(tp > 1, 2 * model.hidden_size, 0.0)
    return (per_token + buffers) * a_bytes / cp


def activation_bytes(model: ModelSpec, batch: Array, input_seq: Array, tp: Array, ep: Array, cp: Array,
                     tp_emb: Array, a_bytes: Array, max_prefill_tokens: float) -> Array:
    """Activation peak + communication buffers + fp32 logits of the sampled rows, bytes per device."""
    tokens = np.minimum(batch * input_seq, max_prefill_tokens)
    logits = batch * model.vocab_size / tp_emb * 4.0
    return tokens * activation_per_token(model, tp, ep, cp, a_bytes) + logits


def max_batch_size(usable: Array, weights: Array, kv_per_seq: Array, act_per_token: Array, logits_per_seq: Array,
                   input_seq: Array, max_prefill_tokens: float) -> Array:
    """Largest batch whose memory fits ``usable`` bytes (memory grows monotonically with batch).

    memory(B) = weights + B * (kv_per_seq + logits_per_seq) + min(B * input_seq, C) * act_per_token.
    If memory at B = C / input_seq fits, the chunk is saturated and
    B = (usable - weights - C * act) / (kv + logits); otherwise B = (usable - weights) /
    (kv + logits + input_seq * act).
    """
    per_seq = kv_per_seq + logits_per_seq
    free = usable - weights
    saturated = np.floor((free - max_prefill_tokens * act_per_token) / per_seq)
    growing = np.floor(free / (per_seq + input_seq * act_per_token))
    b_sat = max_prefill_tokens / input_seq
    fits_at_sat = free - b_sat * per_seq - max_prefill_tokens * act_per_token >= 0
    return np.maximum(np.where(fits_at_sat, saturated, growing), 0.0)
