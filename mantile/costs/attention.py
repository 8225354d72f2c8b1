"""Attention blocks. ``GQAAttention``: multi-head, grouped-query and multi-query attention with RoPE,
as Llama, Qwen and Mixtral run it.

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
from mantile.costs.kernels import Array, Cost, Machine, attention_core, gemm


@dataclass(frozen=True)
class GQAAttention:
    """Q, K, V projections, RoPE, KV-cache write, flash attention, output projection, TP all-reduce.

    Prefill with cp > 1 is ring attention: each device keeps 1/cp of the queries and receives the
    other devices' K/V ((cp-1)/cp of the layer's KV), overlapped with the attention core (only the
    excess is exposed). Decode with cp > 1 splits the KV cache: queries are all-gathered, each device
    attends over its kv_len/cp keys, partial outputs (fp32 + log-sum-exp) are reduce-scattered.
    Decode takes ``w.q_len`` query tokens per sequence (1 for plain decoding).

    Parameters per device: Wq/Wo split over tp, Wk/Wv over min(tp, kv heads) (replicated beyond),
    q/k/v biases. KV cache per token: 2 * kv heads per device * head_dim values.
    """

    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    bias: bool = False
    layer_type: str = "attention"

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
                           kv_eff=(w.kv_len + 1) / 2.0)
            c.include(core)
            ring_bytes = (w.cp - 1) * w.batch * (w.kv_len / w.cp) * 2 * kv_heads * d * w.kv_bytes
            # cp peers are tp devices apart (tp inside): the ring leaves the domain when tp*cp exceeds it
            ring_s = (w.cp - 1) * comm.p2p(net, ring_bytes / np.maximum(w.cp - 1, 1), w.tp * w.cp > net.domain_size)
            c.comm("cp_ring_kv", ring_bytes, np.maximum(ring_s - core.busy_s, 0.0))
        else:
            # q_len new tokens per sequence read the sequence's cache once and each attend to all of it
            # (the causal mask among the q_len new tokens is ignored: a few against thousands of keys)
            attention_core(core, m, w.batch, w.q_len, w.kv_len / w.cp, heads, kv_heads, d, w.a_bytes,
                           w.kv_bytes, causal=False, count=st.attention_decode_kernels, split_kv=True, decode=True)
            if np.any(w.mixed_prefill_seqs):  # chunked prefill riding along (continuous batching)
                attention_core(core, m, w.mixed_prefill_seqs, w.mixed_prefill_len, w.mixed_prefill_len, heads,
                               kv_heads, d, w.a_bytes, w.kv_bytes, causal=True, split_kv=True,
                               count=st.attention_prefill_kernels, kv_eff=(w.mixed_prefill_len + 1) / 2.0,
                               name="attention_prefill_chunk")
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
        return h * (heads + 2 * kv_heads) * d + heads * d * h + bias

    def kv_values_per_token(self, plan: Plan) -> Array:
        _, kv_heads = self.heads(plan.tp)
        return 2 * kv_heads * self.head_dim

    def activation_values_per_token(self, plan: Plan) -> Array:
        """The QKV projection's output, per token."""
        heads, kv_heads = self.heads(plan.tp)
        return (heads + 2 * kv_heads) * self.head_dim
