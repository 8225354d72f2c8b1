"""Study bodies -> ``mantile.sweep`` and the analyses of ``mantile.analysis`` (Pareto, capacity, SLA).

Nothing here computes a metric: it checks ids against the catalog, bounds the grid's size before any
work starts, renames the Python API's argument names to the body's in errors, and reshapes rows.
Invalid plans are rows with ``valid=false`` and a ``reason`` (a grid may hold many), not errors.
"""

from __future__ import annotations

import math
from typing import Any

import polars as pl

import mantile
from mantile.analysis import sla as sla_mod
from mantile.analysis.capacity import capacity_table, ladder
from mantile.analysis.pareto import pareto_front
from mantile.api.catalog import Catalog
from mantile.api.service import body_fields, finite
from mantile.api.study_schemas import (
    MAX_SWEEP_POINTS,
    CapacityRequest,
    Grid,
    RecommendRequest,
    SlaRequest,
    SlaTargets,
    SweepRequest,
)
from mantile.specs import SpecError, ids

#: Python API argument -> study body field.
GRID_FIELDS = {"model": "model_id", "hardware": "hardware_config", "tp": "tensor_parallel",
               "cp": "context_parallel", "sp": "sequence_parallel", "ep": "expert_parallel",
               "embedding_tp": "embedding_tensor_parallel", "pp": "pipeline_parallel", "dp": "data_parallel",
               "batch_size": "batch_size", "input_seq": "input_seq", "output_seq": "output_seq",
               "dtype": "dtype", "kv_dtype": "kv_dtype"}


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _arguments(catalog: Catalog, req: Grid, batch_size: Any) -> dict[str, Any]:
    """``mantile.sweep``'s keyword arguments for a grid, after checking its ids against the catalog."""
    for model_id in _listed(req.model_id):
        catalog.model(model_id)
    for hardware_id in _listed(req.hardware_config):
        catalog.hardware_spec(hardware_id)
    catalog.serving(req.serving)
    body = {**req.model_dump(include=set(GRID_FIELDS.values())), "batch_size": batch_size}
    return {arg: body[field] for arg, field in GRID_FIELDS.items()} | req.serving_options()


def _check_size(args: dict[str, Any]) -> int:
    """Points in the cross product; more than MAX_SWEEP_POINTS is a 422 naming the size."""
    sizes = {GRID_FIELDS[k]: len(_listed(v)) for k, v in args.items() if k in GRID_FIELDS}
    points = math.prod(sizes.values())
    if points > MAX_SWEEP_POINTS:
        longest = max(sizes, key=lambda k: sizes[k])
        listed = " x ".join(f"{k} {n}" for k, n in sizes.items() if n > 1)
        raise SpecError("body", longest, f"{sizes[longest]} values",
                        f"the grid has {listed} = {points:,} points, more than the limit of "
                        f"{MAX_SWEEP_POINTS:,} per request; shorten a list or split the request")
    return points


def _sweep(args: dict[str, Any]) -> pl.DataFrame:
    _check_size(args)
    with body_fields(GRID_FIELDS):
        df = mantile.sweep(**args)
    # requests are capped far below sweep()'s lazy threshold, so the result is always a DataFrame
    return df if isinstance(df, pl.DataFrame) else df.collect()


def _rows(df: pl.DataFrame) -> list[dict[str, Any]]:
    """JSON rows without the per-layer breakdown (``mantile.estimate(..., breakdown=False)``'s keys)."""
    keep = [c for c in df.columns if not c.startswith(("prefill_", "decode_")) or c.endswith("bound")]
    return [finite(r) for r in df.select(keep).to_dicts()]


def sweep(catalog: Catalog, req: SweepRequest) -> dict[str, Any]:
    """Every point of the grid, and the Pareto front (latency down, tokens/s per device up) per
    model and hardware."""
    df = _sweep(_arguments(catalog, req, req.batch_size))
    front = pareto_front(df, latency=req.pareto_latency, throughput="throughput_tokens_per_s_per_device")
    shown = df.filter(pl.col("fits")) if req.fits_only else df
    return {"points": df.height, "rows": _rows(shown), "pareto": _rows(front)}


def _sla(targets: SlaTargets) -> sla_mod.Sla:
    with body_fields({k: f"sla.{k}" for k in sla_mod.BOUNDS}):
        return sla_mod.Sla(**targets.model_dump())


def capacity(catalog: Catalog, req: CapacityRequest) -> dict[str, Any]:
    """Per plan, the largest batch that fits and the largest that meets the SLA (``mantile.analysis.
    capacity``): a probe at batch 1 gives each plan's memory capacity, then a batch ladder up to it."""
    sla = _sla(req.sla)
    args = _arguments(catalog, req, 1)
    probe = _sweep(args)
    rungs = ladder(probe.filter(pl.col("valid"))["max_batch_size"].to_list(), req.max_batch_size)
    df = _sweep({**args, "batch_size": rungs})
    table = capacity_table(df.lazy(), sla)
    return {"points": probe.height + df.height, "plans": [finite(r) for r in table.to_dicts()]}


def sla_search(catalog: Catalog, req: SlaRequest) -> dict[str, Any]:
    """The grid's points that meet the SLA, best first by ``rank_by``; and the one that misses least."""
    sla = _sla(req.sla)
    df = _sweep(_arguments(catalog, req, req.batch_size))
    lf = df.lazy()
    meeting, fitting = sla_mod.count_meeting(lf, sla)
    top = sla_mod.meeting(lf, sla, top=req.top, by=req.rank_by)
    failing = sla_mod.best_failing(lf, sla) if sla else df.head(0)
    best = _rows(failing)[0] if failing.height else None
    misses = sla_mod.miss_text(failing.row(0, named=True), sla) if failing.height else None
    return {"points": df.height, "fitting": fitting, "meeting": meeting, "top": _rows(top),
            "best_failing": best, "best_failing_misses": misses}


#: Python API argument -> recommend body field.
RECOMMEND_FIELDS = {"model": "model_id", "hardware": "hardware_config", "tp": "tensor_parallel",
                    "pp": "pipeline_parallel", "request_rate": "request_rate", "ttft_ms": "sla.ttft_ms",
                    "tpot_ms": "sla.tpot_ms", "percentile": "sla.percentile"}


#: Plan groups one recommend request may search (hardware x engines x dtypes x tp x pp, distinct values):
#: the default body (every catalog system, 21 today, three engines, bf16 and fp8, tp 1-8) is
#: 21 x 3 x 2 x 4 = 504 and answers in seconds; a larger space is a 422 before any work, so one body
#: cannot hold a worker for minutes (use ``mantile.recommend`` in Python for bigger searches).
MAX_RECOMMEND_GROUPS = 1024


def recommend(catalog: Catalog, req: RecommendRequest) -> dict[str, Any]:
    """``mantile.recommend`` for the body: rankings, Pareto front and launch commands."""
    catalog.model(req.model_id)
    fields = {"hardware": "hardware_config", "serving": "serving", "dtype": "dtype", "tp": "tensor_parallel",
              "pp": "pipeline_parallel"}
    lists = {k: getattr(req, f) or ids("hardware") for k, f in fields.items()}
    size = math.prod(len(set(v)) for v in lists.values())
    if size > MAX_RECOMMEND_GROUPS:
        default = {k: len(RecommendRequest.model_fields[f].default or ids("hardware")) for k, f in fields.items()}
        widest = max(lists, key=lambda k: len(set(lists[k])) / default[k])  # the list grown most past its default
        with body_fields(RECOMMEND_FIELDS):
            raise SpecError("recommend", widest, f"{len(set(lists[widest]))} values",
                            f"a search of at most {MAX_RECOMMEND_GROUPS} plan groups (hardware x engines x dtypes x "
                            f"tp x pp); this body asks for {size:,}")
    for hardware_id in req.hardware_config or []:
        catalog.hardware_spec(hardware_id)
    for engine in req.serving:
        catalog.serving(engine)
    with body_fields(RECOMMEND_FIELDS):
        rec = mantile.recommend(req.model_id, req.input_seq, req.output_seq, req.request_rate, req.sla.ttft_ms,
                                req.sla.tpot_ms, percentile=req.sla.percentile, hardware=req.hardware_config,
                                serving=req.serving, dtype=req.dtype, tp=req.tensor_parallel,
                                pp=req.pipeline_parallel, disaggregated=req.disaggregated,
                                max_devices=req.max_devices, top=req.top)
    out = rec.to_dict()
    for key in ("by_gpus", "by_usd_per_hour", "by_energy", "pareto"):
        out[key] = [finite(r) for r in out[key]]
    return out
