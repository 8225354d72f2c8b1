"""Request bodies -> calls of the Python API (``mantile.estimate``, ``mantile.layer_metrics``).

Nothing here computes or checks a metric: it checks ids against the catalog, renames the Python
API's argument names to the body's field names in errors, and reshapes rows.
Invalid plans (``valid=False``) become a ``SpecError`` (-> 422); valid plans that do not fit are
answered normally with ``fits=false``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from pydantic import TypeAdapter

import mantile
from mantile.api.catalog import Catalog
from mantile.api.schemas import BatchCurveRequest, LayerMetricsRequest, SystemMetricsRequest, SystemMetricsResponse
from mantile.costs.blocks import LAYER_TYPES, PHASES
from mantile.engine.spec import model_spec
from mantile.specs import SpecError

#: Python API argument -> body field, for errors raised inside mantile.layer_metrics.
LAYER_FIELDS = {"tp": "tensor_parallel", "cp": "context_parallel", "sp": "sequence_parallel",
                "ep": "expert_parallel", "model": "model_id", "hardware": "hardware_config"}
#: Python API argument -> body field, for errors raised inside mantile.estimate.
SYSTEM_FIELDS = {"tp": "layers.attention.tensor_parallel", "cp": "layers.attention.context_parallel",
                 "sp": "layers.feedforward.sequence_parallel", "ep": "layers.feedforward.expert_parallel",
                 "embedding_tp": "layers.embedding.tensor_parallel", "pp": "pipeline_parallel",
                 "dp": "data_parallel", "model": "model_id", "hardware": "hardware_config"}
#: invalid_field of an invalid row (mantile.costs.checks.INVALID_FIELDS) -> the body field it is about.
INVALID_BODY_FIELDS = {**SYSTEM_FIELDS, "input_seq": "input_seq", "dtype": "dtype", "spec_method": "spec_method",
                       "spec_acceptance": "spec_acceptance", "spec_draft_model": "spec_draft_model"}
#: "more devices than the system": the first of these above 1 is named (the degree added last).
DEVICE_FIELDS = ("data_parallel", "pipeline_parallel", "layers.attention.context_parallel",
                 "layers.attention.tensor_parallel")
CURVE_KEYS = ("batch_size", "ttft_ms", "tpot_ms", "e2e_latency_ms", "throughput_tokens_per_s",
              "throughput_tokens_per_s_per_device", "tokens_per_s_per_user", "memory_gb_per_device", "fits",
              "reason", "ttft_floor_ms", "tpot_floor_ms", "throughput_ceiling_tokens_per_s", "ttft_p10_ms",
              "ttft_p90_ms", "tpot_p10_ms", "tpot_p90_ms", "throughput_p10_tokens_per_s",
              "throughput_p90_tokens_per_s", "band_basis")


@contextmanager
def body_fields(names: Mapping[str, str]) -> Iterator[None]:
    """Re-raise the Python API's SpecErrors under the request body's field names."""
    try:
        yield
    except SpecError as e:
        raise _in_body(e, names) from None


def _in_body(e: Exception, names: Mapping[str, str]) -> Exception:
    """A Python API SpecError as the same error about the body's field (``body_fields``); others as they are."""
    if not isinstance(e, SpecError):
        return e
    field = "layers." + e.field if e.where == "layers" else names.get(e.field, e.field)
    return SpecError("body", field, e.value, e.allowed)


def finite(row: Mapping[str, Any]) -> dict[str, Any]:
    """JSON has no NaN or infinity: such values (never expected for a valid plan) become null."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}


def _model(catalog: Catalog, req: Any) -> Any:
    """The model a body names: its inline ``model`` config (a HuggingFace config.json or Mantile model
    fields, read by ``mantile.engine.spec.model_spec``), else the catalog id ``model_id``."""
    if req.model is None:
        catalog.model(req.model_id)
        return req.model_id
    with body_fields({}):
        try:
            _, spec = model_spec(req.model)
        except SpecError as e:
            raise SpecError("body", "model." + e.field, e.value, e.allowed) from None
    return replace(spec, name=req.model_id or spec.name)


def layer_metrics(catalog: Catalog, req: LayerMetricsRequest) -> dict[str, Any]:
    """One instance of a layer type on one device (``mantile.layer_metrics``)."""
    model = _model(catalog, req)
    catalog.hardware_spec(req.hardware_config)
    catalog.serving(req.serving)
    with body_fields(LAYER_FIELDS):
        out = mantile.layer_metrics(
            model=model, hardware=req.hardware_config, layer_type=req.layer_type, phase=req.phase,
            batch_size=req.batch_size, seq_length=req.seq_length, kv_length=req.kv_length, dtype=req.dtype,
            kv_dtype=req.kv_dtype, tp=req.tensor_parallel, cp=req.context_parallel, sp=req.sequence_parallel,
            ep=req.expert_parallel, serving=req.serving, kernels=True)
    return finite(out)


def _estimate_args(catalog: Catalog, req: SystemMetricsRequest | BatchCurveRequest, batch_size: int
                   ) -> dict[str, Any]:
    """The ``mantile.estimate`` arguments of a body at ``batch_size`` (ids checked against the catalog)."""
    model = _model(catalog, req)
    catalog.hardware_spec(req.hardware_config)
    catalog.serving(req.serving)
    layers = req.layers.model_dump(exclude_none=True)
    return dict(model=model, hardware=req.hardware_config, batch_size=batch_size, input_seq=req.input_seq,
                output_seq=req.output_seq, pp=req.pipeline_parallel, dp=req.data_parallel, dtype=req.dtype,
                kv_dtype=req.kv_dtype, layers=layers, **req.serving_options())


def _estimate_many(catalog: Catalog, reqs: list[tuple[SystemMetricsRequest | BatchCurveRequest, int]]
                   ) -> list[tuple[bool, Any]]:
    """Each (body, batch size)'s checked row, or its error (under the body's field names), from one
    ``mantile.estimate_many`` call: the points that share a model, hardware and profile are evaluated
    together (a few ms for all of them, where each alone takes a few ms)."""
    out: list[tuple[bool, Any]] = [(False, None)] * len(reqs)
    calls, slots = [], []
    for i, (req, batch_size) in enumerate(reqs):
        try:
            calls.append(_estimate_args(catalog, req, batch_size))
            slots.append(i)
        except Exception as e:  # noqa: BLE001 (one body's error is that body's answer)
            out[i] = (False, e)
    for i, row in zip(slots, mantile.estimate_many(calls, errors="return"), strict=True):
        try:
            if isinstance(row, Exception):
                raise _in_body(row, SYSTEM_FIELDS)
            out[i] = (True, _checked(reqs[i][0], row))
        except Exception as e:  # noqa: BLE001
            out[i] = (False, e)
    return out


def _checked(req: SystemMetricsRequest | BatchCurveRequest, row: Mapping[str, Any]) -> dict[str, Any]:
    """An estimate row as the API answers it: an invalid plan is a SpecError naming the body field it is
    about; NaN and infinities become null."""
    if not row["valid"]:
        reason = str(row["reason"])
        field = _invalid_field(req, str(row["invalid_field"]))
        if field == "devices":  # tp*cp*pp*dp > devices: name the product, then the last degree above 1
            reason += " (" + " x ".join(f"{k}={row[k]}" for k in ("tp", "cp", "pp", "dp")) + \
                f" = {row['tp'] * row['cp'] * row['pp'] * row['dp']})"
            field = next((f for f in DEVICE_FIELDS if _get(req, f) > 1), DEVICE_FIELDS[-1])
        value = _dtypes(req) if field == "dtype" else _get(req, field)
        raise SpecError("body", field, value, f"invalid plan: {reason}")
    return finite(row)


def _invalid_field(req: SystemMetricsRequest | BatchCurveRequest, invalid: str) -> str:
    """The body field an invalid row's ``invalid_field`` is about ('devices': the product of degrees)."""
    if invalid == "dp":
        return "devices"
    if invalid == "sp" and req.layers.norm.tensor_parallel > req.layers.feedforward.sequence_parallel:
        return "layers.norm.tensor_parallel"
    return INVALID_BODY_FIELDS.get(invalid, "layers.attention.tensor_parallel")


def _get(req: Any, dotted: str) -> Any:
    value = req
    for part in dotted.split("."):
        value = getattr(value, part)
    return value.model_dump(exclude_none=True) if hasattr(value, "model_dump") else value


def _dtypes(req: SystemMetricsRequest | BatchCurveRequest) -> dict[str, str]:
    """Every number format the request names, by field."""
    out = {"dtype": req.dtype, "kv_dtype": req.kv_dtype or req.dtype}
    for kind in LAYER_TYPES:
        dtype = getattr(req.layers, kind).dtype
        if dtype:
            out[f"layers.{kind}.dtype"] = dtype
    return out


def group_layers(row: Mapping[str, Any]) -> dict[str, Any]:
    """Move ``{phase}_{layer}_ms`` columns under ``layers: {layer: {prefill_ms, decode_ms}}``."""
    out = dict(row)
    out["layers"] = {kind: {f"{phase}_ms": out.pop(f"{phase}_{kind}_ms", None) for phase in PHASES}
                     for kind in LAYER_TYPES}
    return out


def system_metrics_many(catalog: Catalog, reqs: list[SystemMetricsRequest]) -> list[tuple[bool, Any]]:
    """The whole deployment (``mantile.estimate``) of each body, per-layer times grouped per layer type,
    for the bodies that wait together (``limits.HeavyRoutes.run_batched``): per body, (True, its
    answer as the JSON bytes of a ``SystemMetricsResponse``) or (False, its error). The answer is validated
    and encoded here, as FastAPI would encode the route's ``response_model`` (``TypeAdapter.dump_json``,
    by alias), so that the server process, which every request passes through, only forwards bytes."""
    answers: list[tuple[bool, Any]] = []
    for ok, out in _estimate_many(catalog, [(r, r.batch_size) for r in reqs]):
        try:
            answers.append((True, SYSTEM_METRICS_JSON.dump_json(SYSTEM_METRICS_JSON.validate_python(group_layers(out)),
                                                                by_alias=True)) if ok else (False, out))
        except Exception as e:  # noqa: BLE001 (an answer that breaks its schema is that body's error alone)
            answers.append((False, e))
    return answers


SYSTEM_METRICS_JSON = TypeAdapter(SystemMetricsResponse)


def batch_curve(catalog: Catalog, req: BatchCurveRequest) -> dict[str, Any]:
    """Latency and throughput over batch sizes: one ``mantile.estimate_many`` over the batch sizes (one
    cost-model evaluation for the whole curve); the first invalid batch size is the error."""
    rows = []
    for ok, out in _estimate_many(catalog, [(req, b) for b in req.batch_sizes]):
        if not ok:
            raise out
        rows.append(out)
    return {"model_id": req.model_id, "hardware_id": req.hardware_config,
            "num_devices": rows[0]["num_devices"],
            "points": [{k: row[k] for k in CURVE_KEYS} for row in rows]}
