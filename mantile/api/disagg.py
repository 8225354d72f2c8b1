"""``POST /disagg/estimate``: one disaggregated deployment (P prefill + D decode instances), the body of
``mantile.estimate_disagg`` with the product brief's field names, answered with its row.

Nothing here computes a metric: the body is validated (pydantic: a 422 naming the field), ids are
checked against the catalog, the sides are renamed to ``estimate_disagg``'s keys, and its errors are
renamed back to the body's fields (``prefill.tp`` -> ``prefill.tensor_parallel``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

import mantile
from mantile.api.catalog import Catalog
from mantile.api.schemas import MODEL_ID, SERVING, BatchSize, Degree, Dtype, ModelDtype, Tokens, _Body
from mantile.api.service import body_fields, finite
from mantile.specs import SpecError

#: clients of a closed loop (the mean value analysis runs once per client: about 10 us each)
MAX_CONCURRENCY = 65_536
MAX_INSTANCES = 4096
#: body field of a side -> estimate_disagg's side key
SIDE_FIELDS = {"hardware_config": "hardware", "serving": "serving", "tensor_parallel": "tp",
               "pipeline_parallel": "pp", "expert_parallel": "ep", "dp_attention": "dp_attention", "dtype": "dtype",
               "kv_dtype": "kv_dtype", "batch_size": "batch_size", "instances": "instances"}
#: estimate_disagg's argument -> body field, for its errors
ERROR_FIELDS = {"model": "model_id", **{f"{side}.{key}": f"{side}.{field}" for side in ("prefill", "decode")
                                        for field, key in SIDE_FIELDS.items()}}


class DisaggSide(_Body):
    """One side's instances: hardware, engine and plan of one instance, and how many."""

    hardware_config: str | None = Field(default=None, description="a hardware id from GET /hardware; null = the "
                                        "body's hardware_config")
    serving: str = SERVING
    tensor_parallel: Degree = 1
    pipeline_parallel: Degree = 1
    expert_parallel: Degree = 1
    dp_attention: bool = Field(default=False, strict=True, description="data-parallel attention (MoE)")
    dtype: ModelDtype = Field(default="auto", description="auto = the checkpoint's own format")
    kv_dtype: Dtype | None = Field(default=None, description="null = the serving profile's recipe")
    batch_size: BatchSize = Field(default=1, description="prefill side: prompts per prefill pass; ignored on the "
                                  "decode side, whose batch follows from the load")
    instances: int | None = Field(default=None, strict=True, ge=1, le=MAX_INSTANCES,
                                  description="instances of this side; null = 1, or chosen with ratio=auto")


class DisaggRequest(_Body):
    """A disaggregated deployment under exactly one load (``concurrency`` or ``request_rate``)."""

    model_id: str = MODEL_ID
    hardware_config: str | None = Field(default=None, description="both sides' hardware id unless a side names "
                                        "its own", examples=["nvidia_h100_80gb"])
    input_seq: Tokens = Field(description="prompt tokens per request")
    output_seq: Tokens = Field(description="generated tokens per request")
    concurrency: int | None = Field(default=None, strict=True, ge=1, le=MAX_CONCURRENCY,
                                    description="clients in a closed loop")
    request_rate: float | None = Field(default=None, strict=True, gt=0, le=1e6, allow_inf_nan=False,
                                       description="Poisson arrivals, requests/s")
    num_requests: int = Field(default=0, strict=True, ge=0, le=100 * MAX_CONCURRENCY,
                              description="requests a benchmark run sends in all, with concurrency (0: the steady "
                              "state); its first wave of prompts arrives at once")
    prefill: DisaggSide = Field(default_factory=DisaggSide)
    decode: DisaggSide = Field(default_factory=DisaggSide)
    ratio: Literal["auto"] | None = Field(default=None, description="auto: choose the sides' instances (the "
                                          "fewest devices for request_rate, or the largest capacity within "
                                          "max_devices); null: as given")
    max_devices: int | None = Field(default=None, strict=True, ge=1, le=MAX_INSTANCES,
                                    description="device budget of both sides, for ratio=auto")


class DisaggResponse(BaseModel):
    """``mantile.estimate_disagg``'s row: the sides as ``disagg.prefill.<key>`` / ``disagg.decode.<key>``
    and the metrics of the whole deployment (docs/columns.md); more keys than listed here."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())
    num_devices: float
    ttft_ms: float | None = Field(description="prefill queueing + pass + KV transfer")
    tpot_ms: float | None
    kv_transfer_ms: float
    kv_link: Literal["nvlink", "network"]
    throughput_tokens_per_s_per_device: float | None = Field(description="over every device of both sides")
    fits: bool
    valid: bool
    reason: str | None


def _side(catalog: Catalog, req: DisaggRequest, name: str) -> dict[str, Any]:
    side: DisaggSide = getattr(req, name)
    hardware = side.hardware_config or req.hardware_config
    if hardware is None:
        raise SpecError("body", f"{name}.hardware_config", None, "a hardware id from GET /hardware (here or as "
                        "the body's hardware_config)")
    with body_fields({"hardware_config": f"{name}.hardware_config", "serving": f"{name}.serving"}):
        catalog.hardware_spec(hardware)
        catalog.serving(side.serving)
    out = {key: getattr(side, field) for field, key in SIDE_FIELDS.items() if getattr(side, field) is not None}
    return {**out, "hardware": hardware}


def estimate(catalog: Catalog, req: DisaggRequest) -> dict[str, Any]:
    """``mantile.estimate_disagg`` for the body."""
    catalog.model(req.model_id)
    if (req.concurrency is None) == (req.request_rate is None):
        raise SpecError("body", "concurrency", req.concurrency, "exactly one load: concurrency (clients) or "
                        "request_rate (requests/s)")
    prefill, decode = _side(catalog, req, "prefill"), _side(catalog, req, "decode")
    with body_fields(ERROR_FIELDS):
        row = mantile.estimate_disagg(req.model_id, req.input_seq, req.output_seq, prefill, decode,
                                      concurrency=req.concurrency, request_rate=req.request_rate, ratio=req.ratio,
                                      max_devices=req.max_devices, num_requests=req.num_requests)
    return finite(row)


__all__ = ["DisaggRequest", "DisaggResponse", "DisaggSide", "estimate"]
