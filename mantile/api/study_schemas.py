"""Bodies of the study routes: ``POST /sweep``, ``/capacity`` and ``/sla``.

A study body is a grid: every key takes one value or a list of values, and the routes evaluate the
cross product through ``mantile.sweep``. Keys are the request names of ``/config/system-metrics``
flattened (``tensor_parallel`` is the attention's, and the feedforward's times ``expert_parallel``).
A grid may hold at most ``MAX_SWEEP_POINTS`` points; a larger one is a 422 that names its size.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mantile.analysis.sla import RANK_BY
from mantile.api.schemas import (
    HARDWARE_ID,
    MODEL_ID,
    BatchSize,
    Degree,
    Dtype,
    ModelDtype,
    ServingOptions,
    Tokens,
    _Body,
)

#: Points one study request may evaluate (about a second of CPU, about 20 MB of JSON rows).
MAX_SWEEP_POINTS = 20_000
#: Values one key may list.
MAX_VALUES = 1024
#: Largest batch the capacity study tries by default.
CAPACITY_CEILING = 4096

Latency = Literal["tpot_ms", "ttft_ms", "e2e_latency_ms"]
RankBy = Literal[RANK_BY]  # type: ignore[valid-type]


_LIST = Field(min_length=1, max_length=MAX_VALUES)
# One value, or a non-empty list of values.
Ids = str | Annotated[list[str], _LIST]
TokenValues = Tokens | Annotated[list[Tokens], _LIST]
Degrees = Degree | Annotated[list[Degree], _LIST]
Dtypes = Dtype | Annotated[list[Dtype], _LIST]
ModelDtypes = ModelDtype | Annotated[list[ModelDtype], _LIST]
BatchSizes = BatchSize | Annotated[list[BatchSize], _LIST]


class Grid(ServingOptions):
    """Values to cross. ``embedding_tensor_parallel`` defaults to ``tensor_parallel``; ``kv_dtype``
    to ``dtype``; serving options are single values."""

    model_id: Ids = MODEL_ID
    hardware_config: Ids = HARDWARE_ID
    input_seq: TokenValues = Field(description="prompt tokens per sequence")
    output_seq: TokenValues = Field(description="generated tokens per sequence")
    tensor_parallel: Degrees = 1
    context_parallel: Degrees = 1
    sequence_parallel: Degrees = Field(default=1, description="1 or tensor_parallel")
    expert_parallel: Degrees = 1
    embedding_tensor_parallel: Degrees | None = None
    pipeline_parallel: Degrees = 1
    data_parallel: Degrees = 1
    dtype: ModelDtypes = "auto"
    kv_dtype: Dtypes | None = None


class SlaTargets(_Body):
    """Service-level objectives; null: no constraint."""

    ttft_ms: float | None = Field(default=None, gt=0, strict=True, allow_inf_nan=False, description="at most, ms")
    tpot_ms: float | None = Field(default=None, gt=0, strict=True, allow_inf_nan=False, description="at most, ms")
    tokens_per_s_per_user: float | None = Field(default=None, gt=0, strict=True, allow_inf_nan=False,
                                                description="at least, tokens/s")


class SweepRequest(Grid):
    batch_size: BatchSizes
    fits_only: bool = Field(default=False, strict=True, description="return only the rows that fit in memory")
    pareto_latency: Latency = Field(default="tpot_ms", description="the latency the Pareto front minimizes "
                                    "(with throughput_tokens_per_s_per_device maximized), per model and hardware")


class CapacityRequest(Grid):
    sla: SlaTargets = Field(default_factory=SlaTargets)
    max_batch_size: BatchSize = Field(default=CAPACITY_CEILING, description="largest batch tried")


class SlaRequest(Grid):
    batch_size: BatchSizes
    sla: SlaTargets
    top: int = Field(default=10, strict=True, ge=1, le=1000, description="points returned, best first")
    rank_by: RankBy = RANK_BY[0]


class _Rows(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    points: int = Field(description="points evaluated")


class SweepResponse(_Rows):
    rows: list[dict[str, Any]] = Field(description="results-table rows (per-layer breakdown left out)")
    pareto: list[dict[str, Any]] = Field(description="rows on the Pareto front of their model and hardware")


class CapacityResponse(_Rows):
    plans: list[dict[str, Any]] = Field(description="per plan: max_batch_size (memory), sla_max_batch_size, "
                                        "batch_limit, limited_by, and the metrics at batch_limit")


class SlaResponse(_Rows):
    fitting: int = Field(description="points that fit in memory")
    meeting: int = Field(description="points that fit and meet every target")
    top: list[dict[str, Any]] = Field(description="points meeting the SLA, best first by rank_by")
    best_failing: dict[str, Any] | None = Field(description="the fitting point that misses by the least")
    best_failing_misses: str | None


class RecommendSla(_Body):
    """The targets every recommended deployment meets."""

    ttft_ms: float = Field(gt=0, description="time to first token, at most (ms)")
    tpot_ms: float = Field(gt=0, description="time per output token, at most (ms)")
    percentile: Literal["p99", "mean"] = Field(default="p99", description="which TTFT and TPOT the targets bound")


class RecommendRequest(_Body):
    """``POST /recommend``: the workload, the load and the SLA; the search space (defaults: every
    hardware system of the catalog, the vllm, sglang and trtllm engines, bf16 and fp8, tp 1-8, and
    aggregated and disaggregated deployments)."""

    model_id: str = MODEL_ID
    input_seq: Tokens = Field(description="prompt tokens per request")
    output_seq: Tokens = Field(description="generated tokens per request (at least 2)")
    request_rate: float = Field(gt=0, le=1e6, description="requests per second to serve (Poisson arrivals)")
    sla: RecommendSla
    hardware_config: Annotated[list[str], _LIST] | None = Field(default=None, description="hardware ids; null = all")
    serving: Annotated[list[str], _LIST] = Field(default=["vllm", "sglang", "trtllm"], description="engines")
    dtype: Annotated[list[Dtype], _LIST] = Field(default=["bf16", "fp8"])
    tensor_parallel: Annotated[list[Degree], _LIST] = Field(default=[1, 2, 4, 8])
    pipeline_parallel: Annotated[list[Degree], _LIST] = Field(default=[1])
    disaggregated: bool = True
    max_devices: int = Field(default=256, strict=True, ge=1, le=4096)
    top: int = Field(default=5, strict=True, ge=1, le=100, description="rows per ranking")


class RecommendResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    by_gpus: list[dict[str, Any]] = Field(description="deployments meeting the SLA, fewest GPUs first")
    by_usd_per_hour: list[dict[str, Any]] = Field(description="lowest dollars per hour first")
    by_energy: list[dict[str, Any]] = Field(description="lowest energy per generated token first")
    pareto: list[dict[str, Any]] = Field(description="front of tokens/s per GPU against tokens/s per user")
    commands: dict[str, list[str]] = Field(description="launch commands of the best of each ranking")
    searched: dict[str, int] = Field(description="groups and plans searched, pruned and verified")
    deployments: int = Field(description="verified deployments meeting the SLA")
    seconds: float
