"""Layer blocks: the pieces a model family builds a model from.

A block is one concern of a decoder (attention, feedforward, a norm, the embedding and LM head). It
yields, from one place, everything the cost model needs of it:
- ``cost(m, w, net)``: its named kernels and collectives for one forward pass on one device (time);
- ``params(plan)``: parameters one device holds (weight memory);
- ``kv_values(plan, context)``: KV-cache values one device keeps for one sequence of ``context``
  tokens (KV memory; 0 for blocks without a cache; a sliding-window layer stops growing at its
  window, an MLA layer keeps one compressed latent per token);
- ``active_params()``: parameters one token's forward pass multiplies (the whole block, unsharded;
  an MoE block: its top-k and shared experts);
- ``activation_values_per_token(plan)``: its share of the transient activation peak per token.
Every quantity is a numpy array over sweep points (or a scalar).

A ``Work`` describes one forward pass of one layer on one device: how many sequences, how many new
(query) tokens each, how many keys each attends to, and how the layer is split (tp, cp, sp, ep).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from mantile.costs import comm
from mantile.costs.kernels import Array, Cost, Machine, gemm

PHASES = ("prefill", "decode")
LAYER_TYPES = ("attention", "feedforward", "norm", "embedding")


@dataclass(frozen=True)
class Work:
    """One layer's forward pass on one device, as arrays over sweep points.

    phase: 'prefill' (q_len new prompt tokens at the end of kv_len keys, causal: q_len = kv_len without a
    prefix-cache hit) or 'decode' (q_len new tokens per
    sequence, each attending to the kv_len cached keys; q_len = 1 for plain decoding, k + 1 for the
    verify step of speculative decoding).
    batch: sequences in this pass (per replica, per pipeline micro-batch).
    tp/cp/sp/ep: tensor, context, sequence (Megatron, 1 or tp) and expert parallel degrees of the layer.
    Context parallel splits the tokens of each sequence (prefill) or its KV cache (decode) over cp
    devices; the linear layers then see 1/cp of the tokens.
    """

    phase: str
    batch: Array
    q_len: Array
    kv_len: Array
    w_bytes: Array
    a_bytes: Array
    kv_bytes: Array
    tp: Array = 1
    cp: Array = 1
    sp: Array = 1
    ep: Array = 1
    #: continuous batching: prompts prefilled in the same pass as the decode tokens (chunked prefill)
    mixed_prefill_seqs: Array = 0.0
    mixed_prefill_len: Array = 0.0
    #: keys each riding prompt's new tokens attend to (0: mixed_prefill_len; more with a prefix-cache hit,
    #: whose cached tokens are read, not computed)
    mixed_prefill_kv: Array = 0.0
    #: rows that reach the LM head (the last position of each sequence)
    logits_rows: Array = 0.0
    #: expert parallelism (``Placement``): attention groups whose tokens meet in the MoE layer (1: the
    #: tokens are replicated over the tp group), the busiest device's load over the mean (EPLB factor),
    #: and extra expert replicas spread over the ep devices
    attention_dp: Array = 1.0
    expert_imbalance: Array = 1.0
    redundant_experts: Array = 0.0

    @property
    def tokens(self) -> Array:
        """Tokens through the linear layers of one device: (batch * q_len + mixed prefill) / cp."""
        return (self.batch * self.q_len + self.mixed_prefill_seqs * self.mixed_prefill_len) / self.cp


@dataclass(frozen=True)
class Plan:
    """How one device's share of a layer is cut: the degrees that change weights, KV and activations."""

    tp: Array = 1
    ep: Array = 1
    cp: Array = 1
    tp_emb: Array = 1
    redundant_experts: Array = 0
    #: devices of an attention group (shared experts, dense blocks); None = tp
    group_tp: Array | None = None


@dataclass(frozen=True)
class Placement:
    """How the devices of one replica run each block, with expert parallelism as operators run it.

    A replica has R = max(tp, ep) devices. The MoE layers spread their experts over ep devices and
    split each expert over R / ep (= tp / ep when ep <= tp, the classic experts-inside-the-tp-group
    plan; 1 when ep >= tp). Everything else (attention, norms, dense MLPs, embedding) runs in
    attention groups of ``attention_tp`` devices: tp, or 1 with data-parallel attention
    (``dp_attention``: SGLang --enable-dp-attention, TensorRT-LLM attention DP, vLLM -dp with
    --enable-expert-parallel), each group serving its own share of the replica's sequences;
    there are ``attention_dp`` = R / attention_tp groups. When ep > tp the groups are implied (vLLM
    DP+EP). attention_dp = 1 is the plain tensor-parallel replica (tokens replicated over tp).
    """

    tp: Array = 1
    ep: Array = 1
    dp_attention: Array = 0

    @property
    def devices(self) -> Array:
        return np.maximum(self.tp, self.ep)

    @property
    def attention_tp(self) -> Array:
        return np.where(np.asarray(self.dp_attention) > 0, 1.0, self.tp)

    @property
    def attention_dp(self) -> Array:
        return self.devices / self.attention_tp

    def group_batch(self, batch: Array) -> Array:
        """Sequences on the busiest attention group: ceil(batch / attention_dp) (batch when 1)."""
        dp = self.attention_dp
        return np.where(dp > 1, np.ceil(batch / dp), batch)


class Block(Protocol):
    """What every layer block provides (see the module docstring)."""

    @property
    def layer_type(self) -> str:
        """One of LAYER_TYPES: the results table's per-layer-type columns and the layer's dtype follow it."""

    def cost(self, m: Machine, w: Work, net: comm.Network) -> Cost: ...

    def params(self, plan: Plan) -> Array: ...

    def kv_values(self, plan: Plan, context: Array) -> Array: ...

    def activation_values_per_token(self, plan: Plan) -> Array: ...

    def active_params(self) -> float: ...


class _NoCache:
    """Mixin: a block without KV cache and without a share of the activation peak."""

    def kv_values(self, plan: Plan, context: Array) -> Array:
        return 0.0

    def activation_values_per_token(self, plan: Plan) -> Array:
        return 0.0


class _NormParams:
    """Mixin: a norm holds one scale (RMSNorm) or scale + bias (LayerNorm) of width h, on every device."""

    norm_params: int

    def params(self, plan: Plan) -> Array:
        return float(self.norm_params)

    def active_params(self) -> float:
        return float(self.norm_params)


@dataclass(frozen=True)
class Norm(_NormParams, _NoCache):
    """One pre-norm (RMSNorm/LayerNorm: read x, write y) and the residual add of its block (read 2,
    write 1). Sequence parallel (sp = tp) splits the tokens of the norm region over the tp devices;
    otherwise every tp device normalizes all of its tokens (replicated). Parameters: a scale
    (RMSNorm) or scale + bias (LayerNorm) of width h."""

    hidden_size: int
    norm_params: int
    with_residual: bool = True
    layer_type: str = "norm"

    def cost(self, m: Machine, w: Work, net: comm.Network) -> Cost:
        c, h = Cost(), self.hidden_size
        rows = w.tokens / w.sp
        c.elementwise(m, "norm", 2 * rows * h * w.a_bytes, m.stack.norm_kernels)
        if self.with_residual and m.stack.residual_kernels:
            c.elementwise(m, "residual_add", 3 * rows * h * w.a_bytes, m.stack.residual_kernels)
        return c


@dataclass(frozen=True)
class FinalNorm(_NormParams, _NoCache):
    """The model's last norm, on the rows that reach the LM head."""

    hidden_size: int
    norm_params: int
    layer_type: str = "norm"

    def cost(self, m: Machine, w: Work, net: comm.Network) -> Cost:
        c = Cost()
        c.elementwise(m, "final_norm", 2 * w.logits_rows * self.hidden_size * w.a_bytes, m.stack.norm_kernels)
        return c


@dataclass(frozen=True)
class Embedding(_NoCache):
    """Token embedding lookup + LM head over ``w.logits_rows`` rows (the last position of each sequence).

    Vocab-parallel over tp (the embedding tp): the lookup reads n rows of h (masked per shard) and
    all-reduces n x h; the LM head is a [rows x h] @ [h x V/tp] GEMM whose logits are all-gathered.
    With tp = 1 every device holds (and computes) the whole table. ``params`` is one V x h table;
    an untied model holds two (``tables``).
    """

    hidden_size: int
    vocab_size: int
    tied: bool
    layer_type: str = "embedding"

    def cost(self, m: Machine, w: Work, net: comm.Network) -> Cost:
        c, h, v = Cost(), self.hidden_size, self.vocab_size
        n = w.tokens
        c.elementwise(m, "embedding_lookup", n * h * (w.w_bytes + w.a_bytes), 1, weight_bytes=n * h * w.w_bytes)
        emb = n * h * w.a_bytes
        c.comm("embedding_all_reduce", emb, comm.all_reduce(net, emb, w.tp))
        gemm(c, m, w.logits_rows, v / w.tp, h, w.w_bytes, w.a_bytes, name="lm_head")
        logits = w.logits_rows * v * w.a_bytes
        c.comm("logits_all_gather", logits, comm.all_gather(net, logits, w.tp))
        return c

    def params(self, plan: Plan) -> Array:
        return self.vocab_size * self.hidden_size / plan.tp_emb

    def active_params(self) -> float:
        """The LM head (V x h): the input embedding is a row lookup, not a product (the convention of
        the DeepSeek-V3 and GPT-OSS model cards' active-parameter counts)."""
        return float(self.vocab_size * self.hidden_size)

    @property
    def tables(self) -> int:
        """V x h tables of the model: the embedding, and an untied LM head."""
        return 1 if self.tied else 2


@dataclass(frozen=True)
class MTPHead(_NoCache):
    """The extra parts of one multi-token-prediction module (DeepSeek-V3 §2.2; config
    ``num_nextn_predict_layers``): enorm and hnorm (2 h) and eh_proj, a 2h x h projection; its decoder
    layer is an ordinary layer block and its embedding and output head are shared with the model.
    Held in the weights; not run by plain decoding (speculative decoding runs it: the two norms and
    eh_proj over the draft tokens, a [n x 2h] @ [2h x h] GEMM held whole on every device). An EAGLE head's
    input projection (fc, 2h -> h in EAGLE-1) is the same shape."""

    hidden_size: int
    layer_type: str = "feedforward"

    def cost(self, m: Machine, w: Work, net: comm.Network) -> Cost:
        c, h, n = Cost(), self.hidden_size, w.tokens
        c.elementwise(m, "mtp_norms", 2 * 2 * n * h * w.a_bytes, 2 * m.stack.norm_kernels)
        gemm(c, m, n, h, 2 * h, w.w_bytes, w.a_bytes, name="eh_proj")
        return c

    def params(self, plan: Plan) -> Array:
        h = self.hidden_size
        return 2.0 * h * h + 2.0 * h

    def active_params(self) -> float:
        return 0.0


def heads_per_device(num_heads: int, num_kv_heads: int, tp: Array) -> tuple[Array, Array]:
    """(query heads, kv heads) per device; kv heads are replicated when tp > kv heads."""
    return num_heads / tp, np.maximum(num_kv_heads / tp, 1.0)
