"""Per-layer cost on one device: attention, feedforward (dense or MoE), norm, embedding (+ LM head).

A ``Work`` describes one forward pass of one layer on one device: how many sequences, how many new
(query) tokens each, how many keys each attends to, and how the layer is split (tp, cp, sp, ep).
Every function returns a ``Cost`` (kernels summed, communication included) for ONE layer instance.
All quantities are numpy arrays over sweep points (or scalars).

Kernel lists follow the implementation described by the ``KernelStack`` (measure.py's PyTorch
eager code by default): e.g. attention = QKV GEMM, RoPE, [KV-cache write], flash attention,
[output re-layout], output GEMM; the norm and residual add of the block are the ``norm`` layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mantile.costs import comm
from mantile.costs.kernels import Array, Cost, Machine, attention_core, gemm
from mantile.specs.model import ModelSpec

PHASES = ("prefill", "decode")
LAYER_TYPES = ("attention", "feedforward", "norm", "embedding")


@dataclass(frozen=True)
class Work:
    """One layer's forward pass on one device, as arrays over sweep points.

    phase: 'prefill' (q_len = kv_len = prompt length, causal) or 'decode' (q_len = 1, kv_len = cache).
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

    @property
    def tokens(self) -> Array:
        """Tokens through the linear layers of one device: (batch * q_len + mixed prefill) / cp."""
        return (self.batch * self.q_len + self.mixed_prefill_seqs * self.mixed_prefill_len) / self.cp


def heads_per_device(model: ModelSpec, tp: Array) -> tuple[Array, Array]:
    """(query heads, kv heads) per device; kv heads are replicated when tp > kv heads."""
    return model.num_attention_heads / tp, np.maximum(model.num_key_value_heads / tp, 1.0)


def attention(model: ModelSpec, m: Machine, w: Work, net: comm.Network) -> Cost:
    """QKV projection, RoPE, KV-cache write, flash attention, output projection, TP all-reduce.

    Prefill with cp > 1 is ring attention: each device keeps 1/cp of the queries and receives the
    other devices' K/V ((cp-1)/cp of the layer's KV), overlapped with the attention core (only the
    excess is exposed). Decode with cp > 1 splits the KV cache: queries are all-gathered, each device
    attends over its kv_len/cp keys, partial outputs (fp32 + log-sum-exp) are reduce-scattered.
    """
    c, d, h, st = Cost(), model.head_dim, model.hidden_size, m.stack
    heads, kv_heads = heads_per_device(model, w.tp)
    n = w.tokens
    gemm(c, m, n, (heads + 2 * kv_heads) * d, h, w.w_bytes, w.a_bytes)
    c.elementwise(m, st.rope_traffic * n * (heads + kv_heads) * d * w.a_bytes, st.rope_kernels)
    kv_kernels = st.kv_write_kernels_prefill if w.phase == "prefill" else st.kv_write_kernels_decode
    if kv_kernels:
        c.elementwise(m, n * 2 * kv_heads * d * (w.a_bytes + w.kv_bytes), kv_kernels)
        c.tally(kv_bytes=n * 2 * kv_heads * d * w.kv_bytes)
    core = Cost()
    if w.phase == "prefill":
        attention_core(core, m, w.batch, w.q_len / w.cp, w.kv_len, heads, kv_heads, d, w.a_bytes,
                       w.kv_bytes, causal=True, count=st.attention_prefill_kernels,
                       kv_eff=(w.kv_len + 1) / 2.0)
        ring_bytes = (w.cp - 1) * w.batch * (w.kv_len / w.cp) * 2 * kv_heads * d * w.kv_bytes
        # cp peers are tp devices apart (tp inside): the ring leaves the domain when tp*cp exceeds it
        ring_s = (w.cp - 1) * comm.p2p(net, ring_bytes / np.maximum(w.cp - 1, 1), w.tp * w.cp > net.domain_size)
        c.comm(ring_bytes, np.maximum(ring_s - core.busy_s, 0.0))
    else:
        attention_core(core, m, w.batch, 1.0, w.kv_len / w.cp, heads, kv_heads, d, w.a_bytes, w.kv_bytes,
                       causal=False, count=st.attention_decode_kernels, split_kv=True)
        if np.any(w.mixed_prefill_seqs):  # chunked prefill riding along (continuous batching)
            attention_core(core, m, w.mixed_prefill_seqs, w.mixed_prefill_len, w.mixed_prefill_len, heads,
                           kv_heads, d, w.a_bytes, w.kv_bytes, causal=True, split_kv=True,
                           count=st.attention_prefill_kernels, kv_eff=(w.mixed_prefill_len + 1) / 2.0)
        q_bytes = w.batch * heads * d * w.a_bytes
        partial_bytes = w.batch * heads * (d + 1) * 4.0
        c.comm(q_bytes + partial_bytes,
               comm.all_gather(net, q_bytes, w.cp, w.tp) + comm.reduce_scatter(net, partial_bytes, w.cp, w.tp))
        if st.attention_output_copy:
            c.elementwise(m, 2 * n * heads * d * w.a_bytes, 1)
    c.add(core)
    gemm(c, m, n, h, heads * d, w.w_bytes, w.a_bytes)
    out = n * h * w.a_bytes
    c.comm(out, comm.all_reduce(net, out, w.tp))
    return c


def feedforward(model: ModelSpec, m: Machine, w: Work, net: comm.Network) -> Cost:
    """Gated (SwiGLU) or plain MLP, split over tp; MoE experts split over ep, then tp within experts.

    Dense: [gate|up] GEMM (n x h @ h x 2f/tp), activation, down GEMM (n x f/tp @ f/tp x h), all-reduce.
    MoE (E experts, top-k, balanced routing): router GEMM; each of the E/ep local experts gets
    n*k/E rows; a local expert's weights are read if at least one token picks it (expected fraction
    1 - (1 - k/E)^n); the expert outputs are combined by the all-reduce over the tp*ep group.
    """
    c, h = Cost(), model.hidden_size
    n = w.tokens
    tp_f = w.tp / w.ep  # tensor parallel inside one expert (ep devices hold different experts)
    f = model.intermediate_size / tp_f
    up_cols = f * (2 if model.mlp_gated else 1)
    if model.is_moe:
        experts, k = model.num_local_experts, model.num_experts_per_tok
        local = experts / w.ep
        gemm(c, m, n, experts, h, w.w_bytes, w.a_bytes)  # router logits
        rows = n * k / experts
        touched = local * (1.0 - (1.0 - k / experts) ** n)
        gemm(c, m, rows, up_cols, h, w.w_bytes, w.a_bytes, groups=local, weight_groups=touched)
        act_elems = n * k / w.ep * f
        c.elementwise(m, m.stack.activation_traffic * act_elems * w.a_bytes, m.stack.activation_kernels)
        gemm(c, m, rows, h, f, w.w_bytes, w.a_bytes, groups=local, weight_groups=touched)
    else:
        gemm(c, m, n, up_cols, h, w.w_bytes, w.a_bytes)
        traffic = m.stack.activation_traffic if model.mlp_gated else 2.0
        kernels = m.stack.activation_kernels if model.mlp_gated else 1
        c.elementwise(m, traffic * n * f * w.a_bytes, kernels)
        gemm(c, m, n, h, f, w.w_bytes, w.a_bytes)
    out = n * h * w.a_bytes
    c.comm(out, comm.all_reduce(net, out, w.tp))
    return c


def norm(model: ModelSpec, m: Machine, w: Work, with_residual: bool = True) -> Cost:
    """One pre-norm (RMSNorm/LayerNorm: read x, write y) and the residual add of its block (read 2,
    write 1). Sequence parallel (sp = tp) splits the tokens of the norm region over the tp devices;
    otherwise every tp device normalizes all of its tokens (replicated)."""
    c, h = Cost(), model.hidden_size
    rows = w.tokens / w.sp
    c.elementwise(m, 2 * rows * h * w.a_bytes, m.stack.norm_kernels)
    if with_residual and m.stack.residual_kernels:
        c.elementwise(m, 3 * rows * h * w.a_bytes, m.stack.residual_kernels)
    return c


def embedding(model: ModelSpec, m: Machine, w: Work, net: comm.Network, logits_rows: Array) -> Cost:
    """Token embedding lookup + LM head over ``logits_rows`` rows (the last position of each sequence).

    Vocab-parallel over tp (the embedding tp): the lookup reads n rows of h (masked per shard) and
    all-reduces n x h; the LM head is a [rows x h] @ [h x V/tp] GEMM whose logits are all-gathered.
    With tp = 1 every device holds (and computes) the whole table.
    """
    c, h, v = Cost(), model.hidden_size, model.vocab_size
    n = w.tokens
    c.elementwise(m, n * h * (w.w_bytes + w.a_bytes), 1)
    c.tally(weight_bytes=n * h * w.w_bytes)  # the embedding rows looked up
    emb = n * h * w.a_bytes
    c.comm(emb, comm.all_reduce(net, emb, w.tp))
    gemm(c, m, logits_rows, v / w.tp, h, w.w_bytes, w.a_bytes)
    logits = logits_rows * v * w.a_bytes
    c.comm(logits, comm.all_gather(net, logits, w.tp))
    return c


def final_norm(model: ModelSpec, m: Machine, rows: Array, a_bytes: Array) -> Cost:
    """The model's last norm, on the rows that reach the LM head."""
    c = Cost()
    c.elementwise(m, 2 * rows * model.hidden_size * a_bytes, m.stack.norm_kernels)
    return c
