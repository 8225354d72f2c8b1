"""Memory per device: weights, KV cache, activations, communication buffers.

Everything is bytes on the busiest device of a replica (the pipeline stage holding the most).
Formulas (all per device):
- weights = ceil(L/pp) * (attention/tp + experts/ep * MLP/tp_expert + 2 norms) + vocab tables, where a
  vocab table is V*h/tp_emb; with pp = 1 an untied model holds both the embedding and the LM head,
  with pp > 1 the first stage holds the embedding and the last the LM head (one table each).
  K/V projection weights are replicated when tp > kv heads.
- kv_cache = batch * (input_seq + output_seq) * 2 * kv_heads_dev * head_dim * kv_bytes * ceil(L/pp) / cp
- activations: the transient peak of one layer while prefilling one chunk of at most
  ``max_prefill_tokens`` tokens (engines chunk long prefills): residual + normed input (2h), QKV out,
  MLP intermediate (up to 3 f/tp), per token, plus fp32 logits of the sampled rows.
- comm buffers: send + receive staging of one layer output (2 * tokens * h) when tp > 1.
"""

from __future__ import annotations

import numpy as np

from mantile.costs.kernels import Array
from mantile.costs.layers import heads_per_device
from mantile.specs.model import ModelSpec


def layer_params(model: ModelSpec, layer_type: str, tp: Array = 1, ep: Array = 1) -> Array:
    """Parameters of ONE instance of a layer type held by one device.

    attention: Wq/Wo split over tp, Wk/Wv over min(tp, kv heads) (replicated beyond), q/k/v biases;
    feedforward: E/ep local experts, each split over tp/ep (+ the replicated router);
    norm: one scale (RMSNorm) or scale + bias (LayerNorm); embedding: one V x h table over tp.
    """
    h, d = model.hidden_size, model.head_dim
    if layer_type == "attention":
        heads, kv_heads = heads_per_device(model, tp)
        bias = (heads + 2 * kv_heads) * d if model.attention_bias else 0.0
        return h * (heads + 2 * kv_heads) * d + heads * d * h + bias
    if layer_type == "feedforward":
        experts = model.num_local_experts / ep if model.is_moe else 1.0
        return experts * model.expert_params / (tp / ep) + (h * model.num_local_experts if model.is_moe else 0)
    if layer_type == "norm":
        return np.asarray(float(model.norm_params))
    return model.vocab_size * h / tp


def weight_bytes(model: ModelSpec, tp: Array, ep: Array, tp_emb: Array, pp: Array, w_bytes: Array,
                 w_bytes_attn: Array | None = None, w_bytes_ffn: Array | None = None) -> Array:
    """Weight bytes on the busiest device (see module docstring)."""
    wa = w_bytes if w_bytes_attn is None else w_bytes_attn
    wf = w_bytes if w_bytes_ffn is None else w_bytes_ffn
    per_layer = (layer_params(model, "attention", tp) * wa + layer_params(model, "feedforward", tp, ep) * wf
                 + 2 * layer_params(model, "norm") * w_bytes)
    layers = np.ceil(model.num_hidden_layers / pp)
    tables = np.where((pp == 1) & (not model.tie_word_embeddings), 2.0, 1.0)
    vocab = tables * layer_params(model, "embedding", tp_emb) * w_bytes
    return layers * per_layer + vocab + model.norm_params * w_bytes


def kv_cache_bytes(model: ModelSpec, batch: Array, context: Array, tp: Array, pp: Array, cp: Array,
                   kv_bytes: Array) -> Array:
    """KV cache of ``batch`` sequences of ``context`` tokens on one device."""
    _, kv_heads = heads_per_device(model, tp)
    layers = np.ceil(model.num_hidden_layers / pp)
    return batch * context * 2 * kv_heads * model.head_dim * kv_bytes * layers / cp


def activation_per_token(model: ModelSpec, tp: Array, ep: Array, cp: Array, a_bytes: Array) -> Array:
    """Transient activation + comm-buffer bytes per prefill token on one device (see module doc)."""
    h, d = model.hidden_size, model.head_dim
    heads, kv_heads = heads_per_device(model, tp)
    # MoE: a token's k expert rows are spread over the ep devices (balanced routing), each expert
    # split over tp/ep: k/ep intermediate rows of width f/(tp/ep) per token per device.
    routed = model.num_experts_per_tok / ep if model.is_moe else 1.0
    f_dev = model.intermediate_size / (tp / ep) * routed
    per_token = 2 * h + (heads + 2 * kv_heads) * d + 3 * f_dev
    buffers = np.where(tp > 1, 2 * h, 0.0)
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
