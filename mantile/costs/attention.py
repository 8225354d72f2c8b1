"""Attention blocks. ``GQAAttention``: multi-head, grouped-query and multi-query attention with RoPE,
as Llama, Qwen and Mixtral run it, optionally restricted to a sliding window (GPT-OSS, Gemma 3) or to
fixed chunks (Llama 4's chunked local attention), with GPT-OSS's attention sinks.

Kernels (the names of ``layer_metrics(kernels=True)``), per device: ``qkv_proj`` GEMM, ``rope``,
``kv_cache_write``, ``attention`` (flash attention), [``attention_output_copy``], ``o_proj`` GEMM,
``all_reduce`` (tensor parallel); with context parallelism ``cp_ring_kv`` (prefill) or
``cp_all_gather_q`` + ``cp_reduce_scatter_out`` (decode).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mantile.costs import comm
from mantile.costs.blocks import Plan, Work, heads_per_device
from mantile.costs.kernels import Array, Cost, Machine, any_, attention_core, gemm


def causal_keys(q_len: Array, kv_len: Array) -> Array:
    """Mean keys per query when q_len new tokens come last among kv_len keys (causal): kv_len - (q_len - 1)/2;
    (kv_len + 1)/2 for a whole prompt (q_len = kv_len), more when a cached prefix is read, not computed
    (prefix caching). A sliding window keeps its whole-prompt mean (``local_keys``)."""
    return kv_len - (q_len - 1.0) / 2.0


def mixed_keys(w: Work) -> Array:
    """Keys of the prompts riding along a decode pass: their own tokens, or more with a prefix-cache hit."""
    if not any_(w.mixed_prefill_kv):
        return w.mixed_prefill_len
    return np.where(np.asarray(w.mixed_prefill_kv) > 0, w.mixed_prefill_kv, w.mixed_prefill_len)


@dataclass(frozen=True)
class GQAAttention:
    """Q, K, V projections, RoPE, KV-cache write, flash attention, output projection, TP all-reduce.

    Prefill with cp > 1 is ring attention: each device keeps 1/cp of the queries and receives the
    other devices' K/V ((cp-1)/cp of the layer's KV), overlapped with the attention core (only the
    excess is exposed). Decode with cp > 1 splits the KV cache: queries are all-gathered, each device
    attends over its kv_len/cp keys, partial outputs (fp32 + log-sum-exp) are reduce-scattered.
    Decode takes ``w.q_len`` query tokens per sequence (1 for plain decoding).

    Parameters per device: Wq/Wo split over tp, Wk/Wv over min(tp, kv heads) (replicated beyond),
    q/k/v biases, a sink logit per head (``sinks``), q/k RMSNorm scales (``qk_norm``). KV cache per
    token: 2 * kv heads per device * head_dim values.

    Local attention (``window`` > 0): ``kind='sliding'`` lets query i see keys i-W+1..i (Mistral /
    GPT-OSS / Gemma 3 sliding_window, HF ``sliding_attention``); ``kind='chunked'`` lets it see the keys
    of its own chunk of W tokens (Llama 4 ``attention_chunk_size``, iRoPE). The cache keeps
    min(context, W) tokens per sequence (HF's SlidingWindowCache / vLLM's sliding-window and
    chunked-local KV managers free the rest), a decode token reads at most W keys (for chunked
    layers this is the bound at a chunk's last token), and a prefill of S tokens attends to
    sum_i keys(i) / S keys per query on average (``local_keys``). Attention sinks (GPT-OSS: one learned
    logit per head added to the softmax denominator, openai/gpt-oss model code) add h params per
    layer and no measurable time; the StreamingLLM variant (keep the first tokens in the window) is
    not modelled.
    """

    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    bias: bool = False
    layer_type: str = "attention"
    window: int = 0
    kind: str = "full"
    sinks: bool = False
    qk_norm: bool = False

    def keys(self, kv_len: Array) -> Array:
        """Keys a decode token attends to (and cache tokens a sequence keeps): min(kv_len, W)."""
        return np.minimum(kv_len, self.window) if self.window else kv_len

    def local_keys(self, s: Array) -> Array:
        """Mean keys per query of a causal prefill of s tokens. Sliding window W: sum_{i=1..s} min(i, W) / s
        = (s+1)/2 for s <= W, else W - W(W-1)/(2s). Chunks of W: s = nW + r, (n W(W+1)/2 + r(r+1)/2) / s."""
        w = float(self.window)
        if self.kind == "chunked":
            n = np.floor(s / w)
            r = s - n * w
            return (n * w * (w + 1) / 2.0 + r * (r + 1) / 2.0) / s
        return np.where(s <= w, (s + 1) / 2.0, w - w * (w - 1) / (2.0 * np.maximum(s, 1.0)))

    def heads(self, tp: Array) -> tuple[Array, Array]:
        return heads_per_device(self.num_heads, self.num_kv_heads, tp)

    def cost(self, m: Machine, w: Work, net: comm.Network) -> Cost:
        c, d, h, st = Cost(), self.head_dim, self.hidden_size, m.stack
        heads, kv_heads = self.heads(w.tp)
        n = w.tokens
        gemm(c, m, n, (heads + 2 * kv_heads) * d, h, w.w_bytes, w.a_bytes, name="qkv_proj")
        c.elementwise(m, "rope", st.rope_traffic * n * (heads + kv_heads) * d * w.a_bytes, st.rope_kernels)
        kv_kernels = st.kv_write_kernels_prefill if w.phase == "prefill" else st.kv_write_kernels_decode
        if kv_kernels:
            c.elementwise(m, "kv_cache_write", n * 2 * kv_heads * d * (w.a_bytes + w.kv_bytes), kv_kernels,
                          kv_bytes=n * 2 * kv_heads * d * w.kv_bytes)
        core = Cost()
        if w.phase == "prefill":
            attention_core(core, m, w.batch, w.q_len / w.cp, w.kv_len, heads, kv_heads, d, w.a_bytes,
                           w.kv_bytes, causal=True, count=st.attention_prefill_kernels,
                           kv_eff=self.local_keys(w.kv_len) if self.window else causal_keys(w.q_len, w.kv_len))
            c.include(core)
            ring_bytes = (w.cp - 1) * w.batch * (w.kv_len / w.cp) * 2 * kv_heads * d * w.kv_bytes
            # cp peers are tp devices apart (tp inside): the ring leaves the domain when tp*cp exceeds it
            ring_s = (w.cp - 1) * comm.p2p(net, ring_bytes / np.maximum(w.cp - 1, 1), w.tp * w.cp > net.domain_size)
            c.comm("cp_ring_kv", ring_bytes, np.maximum(ring_s - core.busy_s, 0.0))
        else:
            # q_len new tokens per sequence read the sequence's cache once and each attend to all of it
            # (the causal mask among the q_len new tokens is ignored: a few against thousands of keys)
            attention_core(core, m, w.batch, w.q_len, self.keys(w.kv_len) / w.cp, heads, kv_heads, d, w.a_bytes,
                           w.kv_bytes, causal=False, count=st.attention_decode_kernels, split_kv=True, decode=True)
            if any_(w.mixed_prefill_seqs):  # chunked prefill riding along (continuous batching)
                mixed, keys, chunk = w.mixed_prefill_len, mixed_keys(w), Cost()
                attention_core(chunk, m, w.mixed_prefill_seqs, mixed, keys, heads,
                               kv_heads, d, w.a_bytes, w.kv_bytes, causal=True, split_kv=True,
                               count=st.attention_prefill_kernels,
                               kv_eff=self.local_keys(keys) if self.window else causal_keys(mixed, keys),
                               name="attention_prefill_chunk")
                # no chunk kernel (nor its launch) where no prompt rides along
                core.include_where(chunk, np.asarray(w.mixed_prefill_seqs) > 0)
            c.include(core)
            q_bytes = w.batch * w.q_len * heads * d * w.a_bytes
            partial_bytes = w.batch * w.q_len * heads * (d + 1) * 4.0
            c.comm("cp_all_gather_q", q_bytes, comm.all_gather(net, q_bytes, w.cp, w.tp))
            c.comm("cp_reduce_scatter_out", partial_bytes, comm.reduce_scatter(net, partial_bytes, w.cp, w.tp))
            if st.attention_output_copy:
                c.elementwise(m, "attention_output_copy", 2 * n * heads * d * w.a_bytes, 1)
        gemm(c, m, n, h, heads * d, w.w_bytes, w.a_bytes, name="o_proj")
        out = n * h * w.a_bytes
        c.comm("all_reduce", out, comm.all_reduce(net, out, w.tp))
        return c

    def params(self, plan: Plan) -> Array:
        heads, kv_heads = self.heads(plan.tp)
        d, h = self.head_dim, self.hidden_size
        bias = (heads + 2 * kv_heads) * d if self.bias else 0.0
        extra = (heads if self.sinks else 0.0) + (2.0 * d if self.qk_norm else 0.0)
        return h * (heads + 2 * kv_heads) * d + heads * d * h + bias + extra

    def active_params(self) -> float:
        return float(self.params(Plan()))

    def kv_values(self, plan: Plan, context: Array) -> Array:
        """2 * kv heads per device * head_dim values per cached token, min(context, W) tokens."""
        _, kv_heads = self.heads(plan.tp)
        return self.keys(context) * (2 * kv_heads * self.head_dim)

    def activation_values_per_token(self, plan: Plan) -> Array:
        """The QKV projection's output, per token."""
        heads, kv_heads = self.heads(plan.tp)
        return (heads + 2 * kv_heads) * self.head_dim
