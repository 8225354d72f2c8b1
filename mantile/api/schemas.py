"""Request and response bodies of the HTTP API (pydantic), with the product brief's field names.

Requests are strict: integers must be JSON integers (``true`` or ``"8"`` is rejected), unknown keys
are rejected, and every number has a documented range, so a bad body is a 422 that names the field
before any work starts. Responses carry units in their field names (``ttft_ms``, ``memory_gb_per_device``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mantile.engine.bounds import MAX_BATCH_SIZE, MAX_DEGREE, MAX_SEQ_TOKENS
from mantile.specs import DTYPES
from mantile.specs.errors import SpecError
from mantile.specs.serving import BATCHING
from mantile.specs.speculative import METHODS, tokens_from_rates

#: Points of one batch curve (each is one estimate); sizes are bounded by mantile.engine.bounds.
MAX_CURVE_POINTS = 32

Dtype = Literal[DTYPES]  # type: ignore[valid-type]
#: a model's dtype: a format, or ``auto`` = the checkpoint's own (``engine.spec.DTYPE_AUTO``)
ModelDtype = Literal[("auto", *DTYPES)]  # type: ignore[valid-type]
Batching = Literal[BATCHING]  # type: ignore[valid-type]
SpecMethod = Literal[METHODS]  # type: ignore[valid-type]
MAX_SPEC_TOKENS = 64  # draft tokens per verify step (engines run up to about 10)
Phase = Literal["prefill", "decode"]
LayerType = Literal["attention", "feedforward", "norm", "embedding"]
Degree = Annotated[int, Field(strict=True, ge=1, le=MAX_DEGREE)]
BatchSize = Annotated[int, Field(strict=True, ge=1, le=MAX_BATCH_SIZE, description="concurrent sequences")]
Tokens = Annotated[int, Field(strict=True, ge=1, le=MAX_SEQ_TOKENS)]
MODEL_ID = Field(description="a model id from GET /models", examples=["llama_3.3_70b"])
HARDWARE_ID = Field(description="a hardware id from GET /hardware", examples=["nvidia_nvl72_rack"])
SERVING = Field(default="vllm", description="serving profile id (conf/serving/): kernels, batching, reserve")
INLINE_MODEL = Field(default=None, description="an inline HuggingFace config.json (or Mantile model fields); "
                     "model_id then only names it")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ServingOptions(_Body):
    """The serving profile and the values of it a request may replace (null: the profile's own)."""

    serving: str = SERVING
    batching: Batching | None = Field(default=None, description="static (one batch from prefill to last "
                                      "token) or continuous (in-flight batching, chunked prefill)")
    comm_overlap: bool | None = Field(default=None, strict=True, description="overlap TP collectives with compute")
    max_prefill_tokens: Tokens | None = Field(default=None, description="prefill chunk, tokens")
    max_num_seqs: int | None = Field(default=None, strict=True, ge=1, description="the engine's running-"
                                     "sequence cap as launched (vLLM --max-num-seqs, TensorRT-LLM max_batch_size, "
                                     "SGLang --max-running-requests); null: the profile's")
    max_num_batched_tokens: Tokens | None = Field(default=None, description="the engine's token budget of one "
                                                  "step as launched (vLLM --max-num-batched-tokens, TensorRT-LLM "
                                                  "max_num_tokens); null: the profile's")
    memory_reserve_fraction: float | None = Field(default=None, strict=True, ge=0, lt=1,
                                                  description="device memory kept by the runtime")
    spec_method: SpecMethod = Field(default="none", description="speculative decoding: none, draft (a draft "
                                    "model), eagle (an EAGLE head), mtp (the model's MTP modules), ngram")
    spec_num_tokens: int = Field(default=0, strict=True, ge=0, le=MAX_SPEC_TOKENS,
                                 description="draft tokens per verify step (>= 1 with a spec_method)")
    spec_acceptance: Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)] | \
        list[Annotated[float, Field(strict=True, ge=0, le=1, allow_inf_nan=False)]] = Field(
        default=0.0, description="0: the method's default; a per-position acceptance rate in (0, 1); a mean "
        "acceptance length >= 1 (tokens per verify step, bonus token counted); or a list of per-position rates")
    spec_draft_model: str | None = Field(default=None, description="draft model id from GET /models "
                                         "(spec_method=draft)")
    prefix_cache_hit_rate: float = Field(default=0.0, strict=True, ge=0, le=1, allow_inf_nan=False,
                                         description="fraction of prompt tokens found in the prefix cache")

    def serving_options(self) -> dict[str, Any]:
        """The Python API's keyword arguments for these fields (a list of per-position acceptance rates
        becomes the mean tokens per verify step it implies)."""
        acceptance: Any = self.spec_acceptance
        if isinstance(acceptance, list):
            if self.spec_method == "none":
                acceptance = 0.0
            else:
                if self.spec_num_tokens < 1:
                    raise SpecError("body", "spec_num_tokens", self.spec_num_tokens,
                                    f"an integer >= 1 (draft tokens per verify step) with spec_method "
                                    f"{self.spec_method!r}")
                acceptance = tokens_from_rates(acceptance, self.spec_num_tokens)
        return {"serving": self.serving, "batching": self.batching, "comm_overlap": self.comm_overlap,
                "max_prefill_tokens": self.max_prefill_tokens, "max_num_seqs": self.max_num_seqs,
                "max_num_batched_tokens": self.max_num_batched_tokens,
                "memory_reserve_fraction": self.memory_reserve_fraction, "spec_method": self.spec_method,
                "spec_num_tokens": self.spec_num_tokens, "spec_acceptance": acceptance,
                "spec_draft_model": self.spec_draft_model, "prefix_cache_hit_rate": self.prefix_cache_hit_rate}


# ---- GET /hardware, /models, /api/layers -----------------------------------------------------------
class HardwareSummary(BaseModel):
    hardware_id: str
    name: str
    num_devices: int
    device_name: str
    vendor: str
    generation: str
    memory_gib_per_device: float = Field(description="device-visible memory, GiB (2**30 bytes)")
    hbm_bandwidth_tb_per_s: float = Field(description="peak HBM bandwidth per device, TB/s")
    peak_bf16_tflops: float | None = Field(description="dense bf16 peak per device, TFLOP/s")
    peak_tflops: dict[str, float] = Field(description="dense peak per dtype per device, TFLOP/s")
    scale_up_domain_size: int = Field(description="devices in one NVLink/xGMI domain")
    scale_up_bandwidth_gb_per_s_per_device: float
    scale_out_bandwidth_gb_per_s_per_device: float


class HardwareList(BaseModel):
    configs: list[str] = Field(description="valid hardware ids (hardware_config in the POST bodies)")
    summaries: list[HardwareSummary]


class ModelSummary(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    model_id: str
    name: str
    total_params: int
    active_params: int = Field(description="parameters touched per token (MoE: top-k experts)")
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int
    num_local_experts: int
    num_experts_per_tok: int
    is_moe: bool
    source: str


class ModelList(BaseModel):
    models: list[ModelSummary]


class LayerCategory(BaseModel):
    name: LayerType
    count: int = Field(description="instances of this layer type in the model")
    specs: dict[str, Any] = Field(description="the architecture numbers this layer type is built from")
    available_parallelism: list[str] = Field(description="parallelism keys this layer type accepts")
    parallelism_rules: dict[str, str] = Field(description="which values each key accepts")


class LayerList(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    model_id: str
    layers: list[LayerCategory]


# ---- POST /config/layer-metrics ----------------------------------------------------------------
class LayerMetricsRequest(_Body):
    model_id: str = MODEL_ID
    model: dict[str, Any] | None = INLINE_MODEL
    hardware_config: str = HARDWARE_ID
    layer_type: LayerType
    batch_size: BatchSize
    seq_length: Tokens = Field(description="prefill: prompt tokens; decode: the KV cache if no kv_length")
    dtype: Dtype = "bf16"
    tensor_parallel: Degree = 1
    context_parallel: Degree = 1
    sequence_parallel: Degree = Field(default=1, description="1 or tensor_parallel")
    expert_parallel: Degree = Field(default=1, description="MoE only: experts spread over the tp group")
    phase: Phase = "prefill"
    kv_length: Tokens | None = Field(default=None, description="decode: KV cache tokens (default seq_length)")
    kv_dtype: Dtype | None = Field(default=None, description="KV cache format (default dtype)")
    serving: str = SERVING


class KernelRow(BaseModel):
    """One named kernel (or collective) of the layer on one device; the rows' time_ms sum to latency_ms."""

    name: str = Field(description="kernel as the stack launches it: qkv_proj, rope, attention, o_proj, all_reduce, ...")
    launches: float = Field(description="kernel launches (0 for a collective)")
    flops: float
    weight_bytes: float
    kv_bytes: float
    activation_bytes: float
    comm_bytes: float
    compute_ms: float
    memory_ms: float
    overhead_ms: float = Field(description="fixed launch cost (and a GEMM's pipeline fill)")
    comm_ms: float = Field(description="exposed collective time")
    time_ms: float = Field(description="max(compute_ms, memory_ms) + overhead_ms + comm_ms")
    bound: str


class LayerMetricsResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=(), extra="allow")
    model_id: str
    hardware_id: str
    layer_type: LayerType
    phase: Phase
    count: int = Field(description="instances of this layer type in the model")
    flops: float | None = Field(description="FLOPs of one instance on one device")
    bytes: float | None = Field(description="HBM bytes moved by one instance on one device")
    compute_ms: float | None
    memory_ms: float | None
    overhead_ms: float | None
    comm_ms: float | None
    comm_bytes: float | None
    latency_ms: float | None = Field(description="time of one instance on one device")
    kernels: float | None
    bound: str
    arithmetic_intensity_flops_per_byte: float | None
    weight_bytes_read: float | None = Field(default=None, description="of bytes: weights read")
    kv_bytes_read_written: float | None = Field(default=None, description="of bytes: KV cache read and written")
    activation_bytes: float | None = Field(default=None, description="of bytes: activations")
    weights_bytes_per_device: float | None = Field(default=None, description="this instance's weights on one device")
    kv_cache_bytes_per_device: float | None = Field(default=None, description="this layer's KV cache for the batch")
    memory_footprint_bytes_per_device: float | None = Field(default=None, description="weights + KV cache")
    named_kernels: list[KernelRow] = Field(default_factory=list, description="the layer's kernels by name")


# ---- POST /config/system-metrics -----------------------------------------------------------------
class AttentionPlan(_Body):
    tensor_parallel: Degree = 1
    context_parallel: Degree = 1
    dtype: Dtype | None = None


class FeedforwardPlan(_Body):
    tensor_parallel: Degree | None = Field(default=None, description="attention tp / expert_parallel")
    sequence_parallel: Degree = Field(default=1, description="1 or the attention's tensor_parallel")
    expert_parallel: Degree = 1
    dtype: Dtype | None = None


class NormPlan(_Body):
    tensor_parallel: Degree = Field(default=1, description="1 (replicated) or tp (sequence parallel)")
    dtype: Dtype | None = None


class EmbeddingPlan(_Body):
    tensor_parallel: Degree | None = Field(default=None, description="vocab-parallel degree (default tp)")
    dtype: Dtype | None = None


class LayerPlans(_Body):
    attention: AttentionPlan = Field(default_factory=AttentionPlan)
    feedforward: FeedforwardPlan = Field(default_factory=FeedforwardPlan)
    norm: NormPlan = Field(default_factory=NormPlan)
    embedding: EmbeddingPlan = Field(default_factory=EmbeddingPlan)


class _SystemBase(ServingOptions):
    model_id: str = MODEL_ID
    model: dict[str, Any] | None = INLINE_MODEL
    hardware_config: str = HARDWARE_ID
    input_seq: Tokens = Field(description="prompt tokens per sequence")
    output_seq: Tokens = Field(description="generated tokens per sequence")
    layers: LayerPlans = Field(default_factory=LayerPlans)
    dtype: ModelDtype = Field(default="auto", description="activations, and weights of layers without a dtype; "
                              "auto: the checkpoint's format (fp8 DeepSeek-V3, fp4-expert GPT-OSS, else bf16)")
    kv_dtype: Dtype | None = Field(default=None, description="KV cache format (default dtype)")
    pipeline_parallel: Degree = 1
    data_parallel: Degree = 1


class SystemMetricsRequest(_SystemBase):
    batch_size: BatchSize


class BatchCurveRequest(_SystemBase):
    batch_sizes: list[BatchSize] = Field(default=[1, 2, 4, 8, 16, 32, 64, 128, 256], min_length=1,
                                         max_length=MAX_CURVE_POINTS)


class LayerTimes(BaseModel):
    prefill_ms: float | None = Field(description="all instances of the layer type, one prefill pass")
    decode_ms: float | None = Field(description="all instances of the layer type, one decode step")


class _Performance(BaseModel):
    """Latency, throughput and memory of one point (results-table names and units)."""

    ttft_ms: float | None
    tpot_ms: float | None
    e2e_latency_ms: float | None
    throughput_tokens_per_s: float | None
    throughput_tokens_per_s_per_device: float | None
    tokens_per_s_per_user: float | None
    memory_gb_per_device: float | None
    fits: bool
    reason: str | None
    ttft_floor_ms: float | None = Field(description="physics floor of ttft_ms (datasheet peaks, no overhead)")
    tpot_floor_ms: float | None = Field(description="physics floor of tpot_ms")
    throughput_ceiling_tokens_per_s: float | None = Field(description="physics ceiling of throughput_tokens_per_s")
    ttft_p10_ms: float | None = Field(description="the model's 80% error band of ttft_ms: low end")
    ttft_p90_ms: float | None = Field(description="the model's 80% error band of ttft_ms: high end")
    tpot_p10_ms: float | None = Field(description="80% error band of tpot_ms: low end")
    tpot_p90_ms: float | None = Field(description="80% error band of tpot_ms: high end")
    throughput_p10_tokens_per_s: float | None = Field(description="80% error band of the throughput: low end")
    throughput_p90_tokens_per_s: float | None = Field(description="80% error band of the throughput: high end")
    band_basis: str | None = Field(description="the regime and evidence the band comes from, and why widened")


class SystemMetricsResponse(_Performance):
    """One results-table row (DESIGN.md); the per-layer columns are grouped under ``layers``."""

    model_config = ConfigDict(protected_namespaces=(), extra="allow")
    model_id: str
    hardware_id: str
    num_devices: int
    batch_size: int
    input_seq: int
    output_seq: int
    weights_gb_per_device: float | None
    kv_cache_gb_per_device: float | None
    activation_gb_per_device: float | None
    usable_memory_gb_per_device: float | None
    max_batch_size: int
    valid: bool
    layers: dict[str, LayerTimes]


class CurvePoint(_Performance):
    batch_size: int


class BatchCurveResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    model_id: str
    hardware_id: str
    num_devices: int
    points: list[CurvePoint]


# ---- errors ----------------------------------------------------------------------------------------
class ErrorItem(BaseModel):
    loc: list[str | int] = Field(description="where: ['body', 'layers', 'attention', 'tensor_parallel']")
    field: str = Field(description="the dotted field name")
    input: Any = Field(default=None, description="the value received")
    msg: str = Field(description="what is wrong and which values are valid")
    type: str


class ErrorResponse(BaseModel):
    message: str = Field(description="one line: field, value, valid choices")
    detail: list[ErrorItem]
