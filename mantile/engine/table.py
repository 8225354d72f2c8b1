"""Turn cost-model arrays into the results table (Polars), with reasons, prices and names.

The column order and names are the results-table contract of DESIGN.md (each column is described in
docs/columns.md); ``SCHEMA_VERSION`` goes into every Parquet file and changes whenever a column
changes meaning.

Speed: a chunk of the grid is a few sub-grids (``grid.boxes``); each is evaluated once on
broadcastable columns (``grid.box_columns``), so every term of the cost model is computed once per
level of the axes it depends on (a plan-only term once per plan, a per-replica step once whatever
``dp``) and broadcast only where it meets the others. The sub-grids' results are the flat
evaluation's (a test checks it over every mode and model family). Runs of small sub-grids (a
chunk's ragged ends) run as flat blocks of ``BLOCK_POINTS`` points, whose numpy temporaries stay in
the CPU cache (on a 2-core Xeon, 16k-point blocks run about 1.5x faster than 250k-point ones). The
table is then built once per chunk, numeric columns zero-copy from numpy, strings as Enum or
Categorical codes, and reason texts only for the rows that have one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import polars as pl

from mantile.costs.axes import Coded, map_one
from mantile.costs.checks import INVALID_FIELDS, reason_messages
from mantile.costs.kernels import BOUNDS
from mantile.engine.grid import GridIndex, block_columns, box_columns, boxes, chunks
from mantile.engine.spec import DTYPE_AUTO, STR_AXES, SweepSpec, System, checkpoint_recipe
from mantile.serving import system
from mantile.specs import HardwareSpec, ModelSpec

SCHEMA_VERSION = "10"  # 2: cost columns; num_devices filled for invalid plans too; 3: invalid_field;
#: 4: "stack" -> "serving" (the serving profile id); 5: serving_version, load columns (concurrency,
#: request_rate; batch_size null under them), running_batch, request throughput, TTFT/TPOT p50/p99;
#: 6: expert-parallel keys dp_attention, redundant_experts, expert_imbalance; 7: speculative decoding and
#: prefix caching keys spec_method, spec_num_tokens, spec_acceptance, prefix_cache_hit_rate, and the
#: columns spec_tokens_per_step, decode_draft_ms; 8: num_requests (the length of a benchmark run); 9: output_dist
#: (how a run's output lengths spread about output_seq); 10: output_dist may be uniform (a category of its Enum)
IDENTITY = ("model_id", "hardware_id", "serving", "serving_version", "num_devices", "dtype", "kv_dtype", "tp", "pp",
            "dp", "ep", "cp", "sp", "embedding_tp", "batch_size", "concurrency", "request_rate", "input_seq",
            "output_seq", "dp_attention", "redundant_experts", "expert_imbalance", "spec_method", "spec_num_tokens",
            "spec_acceptance", "prefix_cache_hit_rate", "num_requests", "output_dist")
#: identity columns written only when the run uses them (batch_size is always written, null under another load)
OPTIONAL_IDENTITY = ("concurrency", "request_rate")
METRICS = ("ttft_ms", "tpot_ms", "e2e_latency_ms", "throughput_tokens_per_s",
           "throughput_tokens_per_s_per_device", "decode_throughput_tokens_per_s", "tokens_per_s_per_user",
           "cost_usd_per_million_tokens", "throughput_tokens_per_s_per_usd_hour", "weights_gb_per_device",
           "kv_cache_gb_per_device", "activation_gb_per_device", "memory_gb_per_device",
           "usable_memory_gb_per_device", "kv_cache_budget_gb_per_device", "max_batch_size", "fits", "valid",
           "reason", "invalid_field", "prefill_bound", "decode_bound", "running_batch", "request_throughput_per_s",
           "ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms")
METRIC_SET = frozenset(METRICS)
INT_IDENTITY = ("tp", "pp", "dp", "ep", "cp", "sp", "embedding_tp", "batch_size", "concurrency", "input_seq",
                "output_seq")
#: Expert-parallel serving keys (engine.spec.EP_AXES) and their column types; they follow IDENTITY.
EP_IDENTITY = {"dp_attention": bool, "redundant_experts": np.int64, "expert_imbalance": float,
               "spec_num_tokens": np.int64, "spec_acceptance": float, "prefix_cache_hit_rate": float,
               "num_requests": np.int64}
PLAN_KEYS = ("tp", "pp", "dp", "ep", "cp", "sp")
BOUND_ENUM = pl.Enum(list(BOUNDS))
BLOCK_POINTS = 16_384  # cost-model block: ~60 float64 temporaries of 128 KiB fit a 2 MiB L2 cache
BOX_MAX_POINTS = 65_536  # largest sub-grid evaluated at once (its terms that depend on every varying axis)
BOX_MIN_POINTS = 2_048  # smaller sub-grids are evaluated as flat blocks (an evaluation has a fixed cost)
SECONDS_PER_HOUR = 3600.0


def checkpoint_dtypes(model: ModelSpec, hw: HardwareSpec, cols: dict[str, Any]) -> dict[str, Any]:
    """``cols`` with ``dtype=auto`` resolved to ``model``'s checkpoint recipe (``ModelSpec.recipe``; see
    ``engine.spec.DTYPE_AUTO``): the dtype column, plus the per-layer-type dtypes a recipe sets (GPT-OSS:
    fp4 experts beside bf16 attention) for the points that asked for ``auto``."""
    d = cols.get("dtype")
    choices = d.choices if isinstance(d, Coded) else (d,) if isinstance(d, str) else ()
    if DTYPE_AUTO not in choices:
        return cols
    recipe = checkpoint_recipe(model, hw)
    base = recipe.pop("dtype", "bf16")
    resolved = tuple(base if c == DTYPE_AUTO else c for c in choices)
    out = dict(cols)
    for key, value in recipe.items():  # a layer type's dtype: the recipe's where auto, else the point's dtype
        if key not in out:
            per = tuple(value if c == DTYPE_AUTO else r for c, r in zip(choices, resolved, strict=True))
            out[key] = Coded(per, d.codes) if isinstance(d, Coded) else per[0]
    out["dtype"] = Coded(resolved, d.codes) if isinstance(d, Coded) else resolved[0]
    return out


def evaluate_chunk(model_id: str, model: ModelSpec, sys: System, spec: SweepSpec, start: int, stop: int
                   ) -> pl.DataFrame:
    """Evaluate grid points start..stop-1 of one (model, hardware) pair into a results DataFrame."""
    index = GridIndex.of(spec.axes, start, stop)
    out: dict[str, np.ndarray] = {}
    lo = 0
    for cols, n in _pieces(spec, index):
        res = system.evaluate(model, sys.spec, sys.eff, spec.serving, checkpoint_dtypes(model, sys.spec, cols),
                              spec.enforce_max_position).columns()
        shape = _shape(cols)
        for k, v in res.items():  # each piece's columns broadcast straight into the chunk's (one pass, no concat)
            if k not in out:
                out[k] = np.empty(index.n_points, dtype=np.asarray(v).dtype)
            out[k][lo:lo + n].reshape(shape)[...] = v
        lo += n
    ident: dict[str, Any] = {k: index.column(k, np.int64) for k in INT_IDENTITY if k in spec.axes}
    if "request_rate" in spec.axes:
        ident["request_rate"] = index.column("request_rate", float)
    ident.update({k: index.column(k, t) for k, t in EP_IDENTITY.items() if k in spec.axes})
    for key in ("spec_method", "output_dist"):
        if key in spec.axes:
            ident[key] = index.column(key)
    ident["dtype"] = checkpoint_dtypes(model, sys.spec, {"dtype": index.column("dtype")})["dtype"]
    ident["kv_dtype"] = (index.column("kv_dtype") if "kv_dtype" in spec.axes
                         else map_one(ident["dtype"], spec.serving.kv_dtype_for))
    ident.setdefault("embedding_tp", ident["tp"])
    return _frame(model_id, model, sys, spec, ident, out)


def _pieces(spec: SweepSpec, index: GridIndex) -> Iterator[tuple[dict[str, Any], int]]:
    """A chunk's cost-model inputs, in row order, with their number of points: each sub-grid of at
    least ``BOX_MIN_POINTS`` points as broadcastable columns (``grid.box_columns``: a term is computed
    once per level of the axes it depends on), runs of smaller ones as flat blocks of ``BLOCK_POINTS``."""
    flat_lo = 0  # first row of the run of small boxes not yet evaluated

    def flat(hi: int) -> Iterator[tuple[dict[str, Any], int]]:
        for lo, top in chunks(hi - flat_lo, BLOCK_POINTS):
            yield block_columns(index, flat_lo + lo, flat_lo + top), top - lo

    for box in boxes(spec.axes, index.start, index.stop, BOX_MAX_POINTS):
        if box.n_points >= BOX_MIN_POINTS:
            yield from flat(box.lo)
            yield box_columns(spec.axes, box), box.n_points
            flat_lo = box.hi
    yield from flat(index.n_points)


def _shape(cols: dict[str, Any]) -> tuple[int, ...]:
    """The points' shape of cost-model columns (a box's, or (n,) for a flat block)."""
    return np.broadcast_shapes(*(np.shape(v.codes if isinstance(v, Coded) else v) for v in cols.values()))


def results_frame(model_id: str, model: ModelSpec, sys: System, spec: SweepSpec, cols: dict[str, Any]
                  ) -> pl.DataFrame:
    """Results rows for explicit cost-model columns (``cols`` as ``system.evaluate`` takes them)."""
    cols = checkpoint_dtypes(model, sys.spec, cols)
    out = system.evaluate(model, sys.spec, sys.eff, spec.serving, cols, spec.enforce_max_position).columns()
    n = len(out["ttft_ms"])
    ident: dict[str, Any] = {k: (v if isinstance(v, Coded) else np.broadcast_to(np.asarray(v), n).astype(np.int64))
                             for k, v in cols.items() if k in INT_IDENTITY or k in STR_AXES}
    if "request_rate" in cols:
        ident["request_rate"] = np.broadcast_to(np.asarray(cols["request_rate"], dtype=float), n)
    ident.setdefault("kv_dtype", map_one(ident["dtype"], spec.serving.kv_dtype_for))
    ident.setdefault("embedding_tp", ident["tp"])
    ident.update({k: np.broadcast_to(np.asarray(cols[k]), n).astype(t) for k, t in EP_IDENTITY.items() if k in cols})
    return _frame(model_id, model, sys, spec, ident, out)


def results_row(model_id: str, model: ModelSpec, sys: System, spec: SweepSpec, point: dict[str, Any]
                ) -> dict[str, Any]:
    """One point's results row as a dict, without building a table (``estimate``'s fast path): the same
    columns, order and values as a row of ``results_frame`` (NaN stays NaN)."""
    # 0-d columns: one point's arithmetic runs on numpy scalars, ~10x cheaper than on 1-element arrays
    cols = {k: np.float64(v) if not isinstance(v, str) else v for k, v in point.items()}
    res = system.evaluate(model, sys.spec, sys.eff, spec.serving, cols, spec.enforce_max_position)
    out = {k: (v.reshape(-1)[0] if isinstance(v, np.ndarray) else v) for k, v in res.columns().items()}
    return _row(model_id, model, sys, spec, point, out)


def results_rows(model_id: str, model: ModelSpec, sys: System, spec: SweepSpec, points: list[dict[str, Any]]
                 ) -> list[dict[str, Any]]:
    """Rows of many single points with the same keys (``estimate_many``): one evaluation over their
    columns (numbers as float arrays, strings as ``Coded``), then each point's row as ``results_row``
    builds it; equal to ``results_row``'s to 1e-9 relative (the vectorized path, as the sweep's)."""
    cols: dict[str, Any] = {}
    for k, first in points[0].items():
        values = [p[k] for p in points]
        if isinstance(first, str):
            choices = tuple(dict.fromkeys(values))
            cols[k] = Coded(choices, np.asarray([choices.index(v) for v in values], dtype=np.int32))
        else:
            cols[k] = np.asarray(values, dtype=float)
    n = len(points)
    res = system.evaluate(model, sys.spec, sys.eff, spec.serving, cols, spec.enforce_max_position).columns()
    # as Python lists (one C loop per column): each row then reads plain floats, ints and bools
    full = {k: np.broadcast_to(np.asarray(v), (n,)).tolist() for k, v in res.items()}
    return [_row(model_id, model, sys, spec, point, {k: v[i] for k, v in full.items()})
            for i, point in enumerate(points)]


def _row(model_id: str, model: ModelSpec, sys: System, spec: SweepSpec, point: dict[str, Any],
         out: dict[str, Any]) -> dict[str, Any]:
    """One point's row from its identity (``point``) and its evaluated columns (``out``, scalars)."""
    ident = {k: (int(v) if k not in STR_AXES else v) for k, v in point.items() if k in INT_IDENTITY or k in STR_AXES}
    if "request_rate" in point:
        ident["request_rate"] = float(point["request_rate"])
    ident.setdefault("kv_dtype", spec.serving.kv_dtype_for(str(ident["dtype"])))
    ident.setdefault("embedding_tp", ident["tp"])
    ident.update({k: _plain(EP_IDENTITY[k](point[k])) for k in EP_IDENTITY if k in point})
    num_devices = max(ident["tp"], ident["ep"]) * ident["cp"] * ident["pp"] * ident["dp"]
    row: dict[str, Any] = {"model_id": model_id, "hardware_id": sys.hardware_id, "serving": spec.serving.name,
                           "serving_version": spec.serving.version, "num_devices": num_devices,
                           **{k: ident.get(k) for k in IDENTITY[5:] if k in ident or k not in OPTIONAL_IDENTITY}}
    metrics = {k: v for k, v in out.items() if k not in ("num_devices", "invalid_code")}
    metrics.update({k: v[()] for k, v in _prices(sys, np.asarray(out["throughput_tokens_per_s"], dtype=float),
                                                   np.asarray(num_devices)).items()})
    for phase in ("prefill", "decode"):
        metrics[f"{phase}_bound"] = BOUNDS[int(out[f"{phase}_bound"])]
    code = int(out["invalid_code"])
    metrics["reason"] = _reason_text(model, sys, ident, code, out)
    metrics["invalid_field"] = INVALID_FIELDS.get(code)
    ordered = [c for c in METRICS if c in metrics] + [c for c in metrics if c not in METRIC_SET]
    row.update({k: _plain(metrics[k]) for k in ordered})
    return row


def _plain(v: Any) -> Any:
    """numpy scalars -> Python ints, floats and bools (as a Polars row gives them)."""
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def _reason_text(model: ModelSpec, sys: System, ident: dict[str, Any], code: int, out: dict[str, Any]) -> str | None:
    """``_reasons`` for one point (the same templates)."""
    if code:
        text = reason_messages(model, sys.spec, sys.eff)[code]
        for key in PLAN_KEYS:
            text = text.replace("{" + key + "}", str(ident[key]))
        return text
    if not out["fits"]:
        return NOT_FIT.format(round(float(out["memory_gb_per_device"]), 1),
                              round(float(out["usable_memory_gb_per_device"]), 1))
    return None


#: The reason of a valid point that does not fit (Polars ``pl.format`` / ``str.format`` template).
NOT_FIT = "does not fit: needs {} GB per device, {} GB usable"


def _constant(name: str, value: str, n: int) -> pl.Series:
    return pl.Series(name, [value], dtype=pl.Categorical).extend_constant(value, n - 1)


def _identity_series(key: str, value: Any) -> pl.Series:
    if isinstance(value, Coded):
        return pl.Series(key, list(value.choices), dtype=pl.Enum(list(STR_AXES[key]))).gather(value.codes)
    return pl.Series(key, value)


def _frame(model_id: str, model: ModelSpec, sys: System, spec: SweepSpec, ident: dict[str, Any],
           out: dict[str, np.ndarray]) -> pl.DataFrame:
    n = len(out["ttft_ms"])
    num_devices = np.maximum(ident["tp"], ident["ep"]) * ident["cp"] * ident["pp"] * ident["dp"]
    series = [_constant("model_id", model_id, n), _constant("hardware_id", sys.hardware_id, n),
              _constant("serving", spec.serving.name, n), _constant("serving_version", spec.serving.version, n),
              pl.Series("num_devices", num_devices)]
    series += [_identity_series(k, ident[k]) if k in ident else pl.Series(k, [None] * n, dtype=pl.Int64)
               for k in IDENTITY[5:] if k in ident or k not in OPTIONAL_IDENTITY]
    metrics: dict[str, np.ndarray | pl.Series] = {k: v for k, v in out.items()
                                                  if k not in ("num_devices", "invalid_code")}
    metrics.update(_prices(sys, out["throughput_tokens_per_s"], num_devices))
    for phase in ("prefill", "decode"):
        bounds = pl.Series(list(BOUNDS), dtype=BOUND_ENUM)
        metrics[f"{phase}_bound"] = bounds.gather(out[f"{phase}_bound"])
    series += [v.alias(k) if isinstance(v, pl.Series) else pl.Series(k, np.ascontiguousarray(v))
               for k, v in metrics.items()]
    series.append(_reasons(model, sys, ident, out))
    fields = pl.Series("invalid_field", [None, *(INVALID_FIELDS[c] for c in sorted(INVALID_FIELDS))],
                       dtype=pl.String)
    series.append(fields.gather(out["invalid_code"].astype(np.int64)))
    df = pl.DataFrame(series)
    ordered = [c for c in IDENTITY if c in df.columns] + [c for c in METRICS if c in df.columns]
    return df.select(ordered + [c for c in df.columns if c not in ordered])


def _prices(sys: System, throughput_tokens_per_s: np.ndarray, num_devices: np.ndarray
            ) -> dict[str, np.ndarray]:
    """Cost of the deployment from the hardware's price per device-hour (NaN where it has none):
    cost per million generated tokens = price * devices / 3600 / throughput * 1e6, and its inverse
    view, generated tokens/s per dollar-hour = throughput / (price * devices)."""
    price = sys.spec.system.price_usd_per_device_hour
    usd_per_hour = num_devices * (np.nan if price is None else float(price))
    with np.errstate(divide="ignore", invalid="ignore"):
        usd_per_token = usd_per_hour / SECONDS_PER_HOUR / throughput_tokens_per_s
        return {"usd_per_hour": np.broadcast_to(usd_per_hour, np.shape(throughput_tokens_per_s)).astype(float),
                "cost_usd_per_million_tokens": usd_per_token * 1e6,
                "throughput_tokens_per_s_per_usd_hour": throughput_tokens_per_s / usd_per_hour}


def _distinct_rows(columns: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(first row of each distinct row, each row's distinct index) of equal-length non-negative integer
    columns: one mixed-radix key per row when it fits in 62 bits (a 1-D unique is ~50x faster than
    ``np.unique(axis=0)``), else the row-wise unique."""
    radices = [int(c.max()) + 1 if c.size else 1 for c in columns]
    if min((int(c.min()) for c in columns if c.size), default=0) >= 0 and math.prod(radices) < 2**62:
        key = np.zeros(len(columns[0]), dtype=np.int64)
        for col, radix in zip(columns, radices, strict=True):
            key = key * radix + col
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    else:
        _, first, inverse = np.unique(np.stack(columns, axis=1), axis=0, return_index=True, return_inverse=True)
    return first, np.asarray(inverse).reshape(-1)


def _reasons(model: ModelSpec, sys: System, ident: dict[str, Any], out: dict[str, np.ndarray]) -> pl.Series:
    """Why a point is invalid or does not fit (null where it fits); texts are built only for those rows."""
    n = len(out["fits"])
    reason: pl.Series = pl.Series("reason", [None], dtype=pl.String).extend_constant(None, n - 1)
    code = out["invalid_code"]
    invalid, too_big = np.flatnonzero(code != 0), np.flatnonzero((code == 0) & ~out["fits"])
    if too_big.size:
        sub = pl.DataFrame({"need": out["memory_gb_per_device"][too_big],
                            "usable": out["usable_memory_gb_per_device"][too_big]})
        text = sub.select(pl.format(NOT_FIT, pl.col("need").round(1), pl.col("usable").round(1))).to_series()
        reason = reason.scatter(too_big, text)
    if invalid.size:
        # a few distinct (code, plan) pairs among many rows: each text is formatted once, then gathered
        messages = reason_messages(model, sys.spec, sys.eff)
        columns = [code[invalid].astype(np.int64),
                   *(np.broadcast_to(np.asarray(ident[k], dtype=np.int64), n)[invalid] for k in PLAN_KEYS)]
        first, inverse = _distinct_rows(columns)
        texts = []
        for i in first.tolist():
            message = messages[int(columns[0][i])]
            for key, col in zip(PLAN_KEYS, columns[1:], strict=True):
                message = message.replace("{" + key + "}", str(int(col[i])))
            texts.append(message)
        reason = reason.scatter(invalid, pl.Series(texts, dtype=pl.String).gather(inverse))
    return reason
