"""ModelSpec: a decoder-only transformer, named as in HuggingFace ``config.json``."""

from __future__ import annotations

from dataclasses import dataclass, field

from mantile.specs._load import check_ranges, doc
from mantile.specs.errors import SpecError

ACTIVATIONS = ("silu", "gelu", "gelu_pytorch_tanh", "relu")
NORMS = ("rmsnorm", "layernorm")
#: Modules a checkpoint's quantization may leave in 16 bits that Mantile costs apart (``quantization_excludes``):
#: the projections of multi-head latent attention (``costs.mla``), by their HuggingFace names.
QUANTIZATION_EXCLUDABLE = ("q_a_proj", "q_b_proj", "q_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj")
#: Attention kinds of ``layer_types`` (HuggingFace names).
ATTENTION_KINDS = ("full_attention", "sliding_attention", "chunked_attention")


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of a dense or mixture-of-experts decoder-only transformer.

    Field names mirror HuggingFace ``config.json`` so a config can be copied from the hub.
    """

    name: str = field(metadata=doc("human-readable name"))
    hidden_size: int = field(metadata=doc("model width h"))
    num_hidden_layers: int = field(metadata=doc("decoder layers L"))
    num_attention_heads: int = field(metadata=doc("query heads"))
    num_key_value_heads: int = field(metadata=doc("key/value heads (GQA; = heads for MHA, 1 for MQA)"))
    intermediate_size: int = field(metadata=doc("MLP width f (per expert for MoE)"))
    vocab_size: int = field(metadata=doc("vocabulary size V"))
    max_position_embeddings: int = field(metadata=doc("longest context the model supports"))
    head_dim: int = field(default=0, metadata=doc("per-head width; 0 or absent = hidden_size / num_attention_heads"))
    tie_word_embeddings: bool = field(default=False, metadata=doc("LM head shares the embedding matrix"))
    hidden_act: str = field(default="silu", metadata=doc(f"MLP activation, one of {ACTIVATIONS}"))
    mlp_gated: bool | None = field(default=None, metadata=doc("gated MLP (SwiGLU/GeGLU); default: silu"))
    norm_type: str = field(default="rmsnorm", metadata=doc(f"one of {NORMS}"))
    attention_bias: bool = field(default=False, metadata=doc("q/k/v projections carry a bias"))
    num_local_experts: int = field(default=1, metadata=doc("experts per MoE layer (1 = dense)"))
    num_experts_per_tok: int = field(default=1, metadata=doc("experts each token is routed to"))
    rope_theta: float = field(default=10000.0, metadata=doc("RoPE base"))
    # ---- multi-head latent attention (DeepSeek-V2/V3, Kimi K2): kv_lora_rank > 0 turns it on ----
    q_lora_rank: int = field(default=0, metadata=doc("MLA: rank of the query compression (0 = no compression)"))
    kv_lora_rank: int = field(default=0, metadata=doc("MLA: rank of the joint KV compression (0 = not MLA)"))
    qk_rope_head_dim: int = field(default=0, metadata=doc("MLA: per-head width of the RoPE part of q and k"))
    qk_nope_head_dim: int = field(default=0, metadata=doc("MLA: per-head width of the position-free part of q, k"))
    v_head_dim: int = field(default=0, metadata=doc("MLA: per-head width of v"))
    # ---- mixture of experts beyond Mixtral ------------------------------------------------------
    n_shared_experts: int = field(default=0, metadata=doc("experts every token goes through (DeepSeek, Llama 4)"))
    moe_intermediate_size: int = field(default=0, metadata=doc("width of one routed expert (0 = intermediate_size)"))
    intermediate_size_mlp: int = field(default=0, metadata=doc("width of the dense MLP layers of an MoE model "
                                                               "(Llama 4; 0 = intermediate_size)"))
    first_k_dense_replace: int = field(default=0, metadata=doc("the first k layers have a dense MLP (DeepSeek)"))
    interleave_moe_layer_step: int = field(default=1, metadata=doc("every n-th layer is MoE, the others dense "
                                                                   "(Llama 4; DeepSeek moe_layer_freq)"))
    # ---- attention windows, sinks, extra layers ------------------------------------------------
    sliding_window: int = field(default=0, metadata=doc("keys a sliding-window layer attends to (0 = none)"))
    layer_types: tuple[str, ...] = field(default=(), metadata=doc("per layer: full_attention, sliding_attention "
                                                                  "or chunked_attention (HF layer_types)"))
    sliding_window_pattern: int = field(default=0, metadata=doc("every n-th layer is full attention, the others "
                                                                "sliding (Gemma 2/3; used when layer_types is empty)"))
    attention_chunk_size: int = field(default=0, metadata=doc("chunked attention: tokens per chunk (Llama 4)"))
    no_rope_layer_interval: int = field(default=0, metadata=doc("Llama 4: every n-th layer is global (NoPE), "
                                                                "the others chunked"))
    attention_sinks: bool = field(default=False, metadata=doc("a learned sink logit per head (GPT-OSS)"))
    qk_norm: bool = field(default=False, metadata=doc("RMSNorm on q and k per head (Qwen3, Gemma 3)"))
    norms_per_layer: int = field(default=2, metadata=doc("norms per decoder layer (Gemma 3: 4, pre and post)"))
    num_nextn_predict_layers: int = field(default=0, metadata=doc("multi-token-prediction layers kept with the "
                                                                  "weights (DeepSeek-V3 MTP)"))
    model_type: str = field(default="", metadata=doc("HuggingFace model_type, informational"))
    quantization: str = field(default="", metadata=doc("quantization_config.quant_method of the checkpoint "
                                                       "(fp8, mxfp4): the default recipe"))
    weight_block_size: int = field(default=0, metadata=doc("quantization_config.weight_block_size of an fp8 "
                                                           "checkpoint (DeepSeek-V3: 128 x 128 blocks, one scale "
                                                           "each): its GEMMs are block-scaled; 0 = per-tensor"))
    quantization_excludes: tuple[str, ...] = field(default=(), metadata=doc(
        "modules the checkpoint's quantization leaves in 16 bits, by HF module name (hf_quant_config "
        "exclude_modules; one of QUANTIZATION_EXCLUDABLE): their GEMMs run and are stored in bf16 whatever the "
        "layer's dtype (NVIDIA's NVFP4 DeepSeek-R1 keeps q_a_proj, q_b_proj, kv_a_proj_with_mqa and kv_b_proj)"))
    family: str = field(default="", metadata=doc("model family module (mantile/costs/families/); default "
                                                 "'moe' with more than one expert, else 'dense'"))
    source: str = field(default="", metadata=doc("where these numbers come from"))

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                     "intermediate_size", "vocab_size", "max_position_embeddings", "num_local_experts",
                     "num_experts_per_tok", "interleave_moe_layer_step"):
            if getattr(self, name) < 1:
                raise SpecError("?", name, getattr(self, name), "a positive integer")
        check_ranges(self, "non_negative", "head_dim", "q_lora_rank", "kv_lora_rank", "qk_rope_head_dim",
                     "qk_nope_head_dim", "v_head_dim", "n_shared_experts", "moe_intermediate_size",
                     "intermediate_size_mlp", "first_k_dense_replace", "sliding_window", "sliding_window_pattern",
                     "attention_chunk_size", "no_rope_layer_interval", "norms_per_layer", "num_nextn_predict_layers")
        check_ranges(self, "at_least_one", "interleave_moe_layer_step")
        check_ranges(self, "positive", "rope_theta")
        if self.num_attention_heads % self.num_key_value_heads:
            raise SpecError("?", "num_key_value_heads", self.num_key_value_heads,
                            f"must divide num_attention_heads ({self.num_attention_heads})")
        if not self.head_dim:
            if self.hidden_size % self.num_attention_heads:
                raise SpecError("?", "head_dim", None, "required when heads do not divide hidden_size")
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_attention_heads)
        if self.hidden_act not in ACTIVATIONS:
            raise SpecError("?", "hidden_act", self.hidden_act, ACTIVATIONS)
        if self.norm_type not in NORMS:
            raise SpecError("?", "norm_type", self.norm_type, NORMS)
        if self.mlp_gated is None:
            object.__setattr__(self, "mlp_gated", self.hidden_act == "silu")
        if not self.family:
            object.__setattr__(self, "family", "deepseek" if self.kv_lora_rank else
                               "moe" if self.num_local_experts > 1 else "dense")
        bad = sorted(set(self.layer_types) - set(ATTENTION_KINDS))
        if bad:
            raise SpecError("?", "layer_types", bad[0], ATTENTION_KINDS)
        if self.layer_types and len(self.layer_types) != self.num_hidden_layers:
            raise SpecError("?", "layer_types", len(self.layer_types),
                            f"one entry per layer ({self.num_hidden_layers})")
        bad = sorted(set(self.quantization_excludes) - set(QUANTIZATION_EXCLUDABLE))
        if bad:
            raise SpecError("?", "quantization_excludes", bad[0], QUANTIZATION_EXCLUDABLE)
        if self.quantization_excludes and not self.kv_lora_rank:
            raise SpecError("?", "quantization_excludes", list(self.quantization_excludes),
                            "empty: only multi-head latent attention (kv_lora_rank > 0) costs projections apart")
        if self.num_experts_per_tok > self.num_local_experts:
            raise SpecError("?", "num_experts_per_tok", self.num_experts_per_tok,
                            f"at most num_local_experts ({self.num_local_experts})")

    # ---- derived sizes (elements, not bytes) -------------------------------------------------
    @property
    def is_moe(self) -> bool:
        return self.num_local_experts > 1

    @property
    def is_gated(self) -> bool:
        """Gated MLP (SwiGLU/GeGLU): gate, up and down matrices."""
        return bool(self.mlp_gated)

    @property
    def q_width(self) -> int:
        """Width of the query projection output: heads * head_dim."""
        return self.num_attention_heads * self.head_dim

    @property
    def kv_width(self) -> int:
        """Width of one of K or V: kv_heads * head_dim."""
        return self.num_key_value_heads * self.head_dim

    @property
    def attention_params(self) -> int:
        """Wq, Wk, Wv (h x (q + 2kv)) + Wo (q x h) (+ q/k/v bias)."""
        bias = self.q_width + 2 * self.kv_width if self.attention_bias else 0
        return self.hidden_size * (self.q_width + 2 * self.kv_width) + self.q_width * self.hidden_size + bias

    @property
    def mlp_matrices(self) -> int:
        """Weight matrices of one MLP: gate, up, down (gated) or up, down."""
        return 3 if self.is_gated else 2

    @property
    def expert_params(self) -> int:
        """Parameters of one expert's MLP (= the MLP of a dense model)."""
        return self.mlp_matrices * self.hidden_size * self.intermediate_size

    @property
    def feedforward_params(self) -> int:
        """All MLP parameters of one layer: experts x expert MLP (+ router h x E for MoE)."""
        router = self.hidden_size * self.num_local_experts if self.is_moe else 0
        return self.num_local_experts * self.expert_params + router

    @property
    def norm_params(self) -> int:
        """Per norm: a scale (RMSNorm) or scale + bias (LayerNorm) of width h."""
        return self.hidden_size * (1 if self.norm_type == "rmsnorm" else 2)

    @property
    def embedding_params(self) -> int:
        """Token embedding V x h, plus an untied LM head V x h."""
        return self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)

    @property
    def recipe(self) -> dict[str, str]:
        """The dtypes the checkpoint's quantization_config implies (a fresh dict): fp8 -> every layer in
        fp8; mxfp4 -> the MoE experts in mxfp4 (GPT-OSS keeps attention, router and embeddings in bf16:
        its modules_to_not_convert; TensorRT-LLM runs them W4A8, MXFP4 weights with MXFP8 activations,
        whose measured fused-MoE constants the mxfp4 format carries), nvfp4 (NVIDIA ModelOpt) -> every
        linear layer in NVFP4 (fp4) but the modules its exclude_modules name (``quantization_excludes``;
        lm_head stays 16-bit where the serving profile keeps the embedding so); none -> {}."""
        if self.quantization == "fp8":
            return {"dtype": "fp8"}
        if self.quantization == "mxfp4":
            return {"feedforward_dtype": "mxfp4"}
        if self.quantization in ("nvfp4", "modelopt_fp4"):
            return {"dtype": "fp4"}
        return {}

    @property
    def attention_layer_types(self) -> tuple[str, ...]:
        """Per layer one of ATTENTION_KINDS: ``layer_types`` when given; else every
        ``sliding_window_pattern``-th layer full and the others sliding (Gemma 3); else every
        ``no_rope_layer_interval``-th layer full and the others chunked (Llama 4); else all sliding when
        ``sliding_window`` is set (Mistral), all full otherwise. (Parameter counts: ``costs.families``.)"""
        n = self.num_hidden_layers
        if self.layer_types:
            return self.layer_types
        if self.sliding_window and self.sliding_window_pattern:
            return tuple("full_attention" if (i + 1) % self.sliding_window_pattern == 0 else "sliding_attention"
                         for i in range(n))
        if self.attention_chunk_size and self.no_rope_layer_interval:
            return tuple("full_attention" if (i + 1) % self.no_rope_layer_interval == 0 else "chunked_attention"
                         for i in range(n))
        return ("sliding_attention" if self.sliding_window else "full_attention",) * n
