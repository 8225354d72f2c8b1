"""Multi-head latent attention (MLA), as DeepSeek-V2/V3 and Kimi K2 define it.

Source: DeepSeek-V2 technical report (arXiv:2405.04434) §2.1 and appendix C; the model code
(``modeling_deepseek.py``: q_a_proj, q_a_layernorm, q_b_proj, kv_a_proj_with_mqa, kv_a_layernorm,
kv_b_proj, o_proj); vLLM's ``MLACommonImpl`` docstring for the two compute paths.

Widths (config.json): H heads, q_lora_rank r_q (0 = a plain q_proj), kv_lora_rank r_kv,
qk_nope_head_dim d_n, qk_rope_head_dim d_r, v_head_dim d_v. Per token the layer caches one compressed
latent c_kv (r_kv) and one shared RoPE key k_pe (d_r): r_kv + d_r values per layer (512 + 64 = 576
for DeepSeek-V3), whatever the number of heads; tensor parallelism splits the heads, not the
latent, so every tp device keeps the whole cache of its sequences (data-parallel attention is how
engines avoid that copy).

Kernels, per device (heads H/tp):
- both phases: ``qkv_a_proj`` (n x h -> r_q + r_kv + d_r: q_a_proj and kv_a_proj_with_mqa as the one
  GEMM every engine runs; a model without a query LoRA has ``q_proj`` and ``kv_a_proj`` instead),
  ``q_a_norm``, ``q_b_proj`` (r_q -> H/tp (d_n + d_r)), ``kv_a_norm``, ``rope``, ``kv_cache_write``
  (r_kv + d_r values),
  ``o_proj`` (H/tp d_v -> h), ``all_reduce``;
- prefill, the expanded ("MHA") path: ``kv_b_proj`` expands every key's latent to H/tp (d_n + d_v)
  and the attention core runs as multi-head attention with q/k width d_n + d_r and v width d_v;
- decode, the absorbed ("MQA") path: W_UK is absorbed into the query (``q_absorb_uk``: per head
  d_n -> r_kv) and W_UV into the output (``out_absorb_uv``: per head r_kv -> d_v), so the core
  attends over the cached latent directly as one shared KV head: q/k width r_kv + d_r, v width r_kv,
  reading r_kv + d_r values per cached token. The two absorptions are batched GEMMs over the heads (one
  kernel whose tiles span every head), costed as one n x (H/tp * out) GEMM: the same FLOPs, weights
  and tiles (its input activations, read once per head, are counted once).
FLOPs of a core: 2 (q/k width) + 2 (v width) per query, key and head, i.e. ``attention_core`` with
head_dim = (q/k width + v width) / 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mantile.costs import comm
from mantile.costs.attention import causal_keys, mixed_keys
from mantile.costs.blocks import Plan, Work
from mantile.costs.kernels import Array, Cost, Machine, any_, attention_core, gemm


@dataclass(frozen=True)
class MLAAttention:
    """See the module docstring. Parameters per device: q_a, kv_a and their norms replicated; q_b,
    kv_b and o split over tp by heads."""

    hidden_size: int
    num_heads: int
    q_lora_rank: int
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int
    #: HF names of the projections the checkpoint leaves in 16 bits (``ModelSpec.quantization_excludes``)
    unquantized: frozenset[str] = frozenset()
    layer_type: str = "attention"

    @property
    def latent_width(self) -> int:
        """Cached values per token: r_kv + d_r."""
        return self.kv_lora_rank + self.qk_rope_head_dim

    def _gemm(self, c: Cost, m: Machine, w: Work, rows: Array, cols: Array, depth: Array, name: str,
              *modules: str) -> None:
        """A GEMM over the checkpoint's ``modules``: in bf16 where the checkpoint leaves them all unquantized
        (a fused GEMM of a quantized and an unquantized module runs quantized), else in the layer's dtype."""
        mm, w_bytes = m.kept_16bit(w.w_bytes) if set(modules) <= self.unquantized else (m, w.w_bytes)
        gemm(c, mm, rows, cols, depth, w_bytes, w.a_bytes, name=name)

    #: HF modules behind each GEMM (the absorbed W_UK / W_UV are kv_b_proj's two halves)
    MODULES = {"qkv_a_proj": ("q_a_proj", "kv_a_proj_with_mqa"), "q_b_proj": ("q_b_proj",), "q_proj": ("q_proj",),
               "kv_a_proj": ("kv_a_proj_with_mqa",), "q_absorb_uk": ("kv_b_proj",), "out_absorb_uv": ("kv_b_proj",),
               "kv_b_proj": ("kv_b_proj",), "kv_b_proj_chunk": ("kv_b_proj",), "o_proj": ("o_proj",)}

    def unquantized_params(self, plan: Plan) -> Array:
        """Parameters on one device of the projections the checkpoint leaves in 16 bits (memory)."""
        h, heads = self.hidden_size, self.num_heads / plan.tp
        d_n, d_r, d_v, r_q, r_kv = (self.qk_nope_head_dim, self.qk_rope_head_dim, self.v_head_dim, self.q_lora_rank,
                                    self.kv_lora_rank)
        sizes = {"q_a_proj": h * r_q, "q_b_proj": r_q * heads * (d_n + d_r) if r_q else 0.0,
                 "q_proj": 0.0 if r_q else h * heads * (d_n + d_r), "kv_a_proj_with_mqa": h * self.latent_width,
                 "kv_b_proj": r_kv * heads * (d_n + d_v), "o_proj": heads * d_v * h}
        return sum((sizes[name] for name in self.unquantized), 0.0)

    def _down_and_q(self, c: Cost, m: Machine, w: Work, n: Array, heads: Array) -> None:
        """The down projections and the query. With a query LoRA (DeepSeek-V2/V3, Kimi K2) every engine
        runs q_a_proj and kv_a_proj_with_mqa as one GEMM, h -> r_q + r_kv + d_r, both reading the same
        normed hidden state: SGLang 0.5.9 ``fused_qkv_a_proj_with_mqa`` (python/sglang/srt/models/
        deepseek_v2.py), vLLM ``fused_qkv_a_proj`` (vllm/model_executor/models/deepseek_v2.py),
        TensorRT-LLM's ``kv_a_proj_with_mqa`` of width r_kv + d_r + r_q (tensorrt_llm/_torch/models/
        modeling_deepseekv3.py). The same FLOPs and weight bytes as two GEMMs, one launch and one input
        read."""
        h, qk = self.hidden_size, self.qk_nope_head_dim + self.qk_rope_head_dim
        if self.q_lora_rank:
            self._gemm(c, m, w, n, self.q_lora_rank + self.latent_width, h, "qkv_a_proj", *self.MODULES["qkv_a_proj"])
            c.elementwise(m, "q_a_norm", 2 * n * self.q_lora_rank * w.a_bytes, m.stack.norm_kernels)
            self._gemm(c, m, w, n, heads * qk, self.q_lora_rank, "q_b_proj", *self.MODULES["q_b_proj"])
        else:
            self._gemm(c, m, w, n, heads * qk, h, "q_proj", *self.MODULES["q_proj"])
            self._gemm(c, m, w, n, self.latent_width, h, "kv_a_proj", *self.MODULES["kv_a_proj"])

    def cost(self, m: Machine, w: Work, net: comm.Network) -> Cost:
        c, h, st = Cost(), self.hidden_size, m.stack
        heads, n = self.num_heads / w.tp, w.tokens
        r_kv, d_n, d_r, d_v = self.kv_lora_rank, self.qk_nope_head_dim, self.qk_rope_head_dim, self.v_head_dim
        self._down_and_q(c, m, w, n, heads)
        c.elementwise(m, "kv_a_norm", 2 * n * r_kv * w.a_bytes, st.norm_kernels)
        c.elementwise(m, "rope", st.rope_traffic * n * (heads + 1) * d_r * w.a_bytes, st.rope_kernels)
        kv_kernels = st.kv_write_kernels_prefill if w.phase == "prefill" else st.kv_write_kernels_decode
        if kv_kernels:
            c.elementwise(m, "kv_cache_write", n * self.latent_width * (w.a_bytes + w.kv_bytes), kv_kernels,
                          kv_bytes=n * self.latent_width * w.kv_bytes)
        if w.phase == "prefill":
            self._expanded(c, m, w, w.batch, w.q_len / w.cp, w.kv_len, heads, st.attention_prefill_kernels,
                           kv_eff=causal_keys(w.q_len, w.kv_len))
        else:
            self._gemm(c, m, w, n, heads * r_kv, d_n, "q_absorb_uk", *self.MODULES["q_absorb_uk"])
            attention_core(c, m, w.batch, w.q_len, w.kv_len / w.cp, heads, 1.0, (2 * r_kv + d_r) / 2.0, w.a_bytes,
                           w.kv_bytes, causal=False, count=st.attention_decode_kernels, split_kv=True,
                           cache_values_per_token=self.latent_width, decode=True)
            if any_(w.mixed_prefill_seqs):
                keys, chunk = mixed_keys(w), Cost()
                self._expanded(chunk, m, w, w.mixed_prefill_seqs, w.mixed_prefill_len, keys, heads,
                               st.attention_prefill_kernels, name="attention_prefill_chunk",
                               kv_eff=causal_keys(w.mixed_prefill_len, keys))
                # no chunk kernels (kv_b_proj's weight read, launches; 0/0 waves) where no prompt rides along
                c.include_where(chunk, np.asarray(w.mixed_prefill_seqs) > 0)
            q_bytes = w.batch * w.q_len * heads * (r_kv + d_r) * w.a_bytes
            partial_bytes = w.batch * w.q_len * heads * (r_kv + 1) * 4.0
            c.comm("cp_all_gather_q", q_bytes, comm.all_gather(net, q_bytes, w.cp, w.tp))
            c.comm("cp_reduce_scatter_out", partial_bytes, comm.reduce_scatter(net, partial_bytes, w.cp, w.tp))
            self._gemm(c, m, w, n, heads * d_v, r_kv, "out_absorb_uv", *self.MODULES["out_absorb_uv"])
        self._gemm(c, m, w, n, h, heads * d_v, "o_proj", *self.MODULES["o_proj"])
        out = n * h * w.a_bytes
        c.comm("all_reduce", out, comm.all_reduce(net, out, w.tp))
        return c

    def _expanded(self, c: Cost, m: Machine, w: Work, batch: Array, q_len: Array, kv_len: Array, heads: Array,
                  count: float, name: str = "attention", kv_eff: Array | None = None) -> None:
        """kv_b_proj over every key (a cached prefix's latents are expanded too), then causal multi-head
        attention (the prefill path); ``kv_eff``: mean keys per query (default: a whole prompt's)."""
        d_n, d_r, d_v = self.qk_nope_head_dim, self.qk_rope_head_dim, self.v_head_dim
        self._gemm(c, m, w, batch * kv_len, heads * (d_n + d_v), self.kv_lora_rank,
                   "kv_b_proj" if name == "attention" else "kv_b_proj_chunk", *self.MODULES["kv_b_proj"])
        attention_core(c, m, batch, q_len, kv_len, heads, heads, (d_n + d_r + d_v) / 2.0, w.a_bytes, w.a_bytes,
                       causal=True, count=count, kv_eff=(kv_len + 1) / 2.0 if kv_eff is None else kv_eff,
                       name=name)

    def params(self, plan: Plan) -> Array:
        h, heads = self.hidden_size, self.num_heads / plan.tp
        qk = self.qk_nope_head_dim + self.qk_rope_head_dim
        q = (h * self.q_lora_rank + self.q_lora_rank + self.q_lora_rank * heads * qk) if self.q_lora_rank \
            else h * heads * qk
        kv = h * self.latent_width + self.kv_lora_rank + self.kv_lora_rank * heads * (self.qk_nope_head_dim
                                                                                     + self.v_head_dim)
        return q + kv + heads * self.v_head_dim * h

    def active_params(self) -> float:
        return float(self.params(Plan()))

    def kv_values(self, plan: Plan, context: Array) -> Array:
        """context x (r_kv + d_r): the latent is not split by tp."""
        return context * float(self.latent_width)

    def activation_values_per_token(self, plan: Plan) -> Array:
        """q, the latent and the expanded k/v of a prefill token."""
        heads = self.num_heads / plan.tp
        return heads * (self.qk_nope_head_dim + self.qk_rope_head_dim) + self.latent_width + \
            heads * (self.qk_nope_head_dim + self.v_head_dim)
