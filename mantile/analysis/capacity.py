"""Batch-capacity study (``+study=capacity``): how many concurrent sequences each plan can serve.

For every model, system, plan and input/output length:

1. a probe at batch 1 gives the KV-cache budget per device;
2. ``exact_limits`` finds, per plan, the largest batch that fits and the largest batch that meets
   each SLA constraint by bisection on the batch size (every plan of a system evaluated at once by
   the engine, ~14 rounds for a ceiling of 16384). Bisection is exact because the cost model is
   monotone in the batch: memory, TTFT and TPOT grow with it, tokens/s per user falls;
3. a batch ladder 1, 2, 4, ... up to the largest capacity is evaluated together with each plan's
   limits (and limit + 1, the first batch that misses): the throughput/latency curve of each plan;
4. ``capacity_table`` reads the limits off that table: the batch limit is the largest batch that
   fits and, when an SLA is set, meets it; ``limited_by`` says which ran out first: memory, or the
   SLA constraint(s) missed at the next batch.

``capacity_table`` works on any results table with several batch sizes per plan (one job's or a
merged multirun's); it is exact when the table holds each plan's limits and limit + 1, as the
tables ``run_capacity`` writes do, and otherwise as fine as the batches the table holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mantile.analysis.sla import BOUNDS, NO_SLA, Sla
from mantile.costs.axes import Coded
from mantile.engine import io
from mantile.engine.runner import EngineSettings, ParetoSettings, RunResult, run
from mantile.engine.spec import DTYPE_AUTO, STR_AXES, SweepSpec
from mantile.engine.table import EP_IDENTITY, IDENTITY, INT_IDENTITY, results_frame

PLAN = tuple(c for c in IDENTITY if c != "batch_size")
AT_LIMIT = ("throughput_tokens_per_s_per_device", "throughput_tokens_per_s", "ttft_ms", "tpot_ms",
            "tokens_per_s_per_user", "memory_gb_per_device", "cost_usd_per_million_tokens")
CURVE = ("batch_size", "ttft_ms", "tpot_ms", "throughput_tokens_per_s_per_device", "tokens_per_s_per_user",
         "memory_gb_per_device", "meets_sla")


def ladder(max_batches: Iterable[int], ceiling: int) -> list[int]:
    """Powers of two up to the largest maximum (at most ``ceiling``), plus each plan's own maximum."""
    tops = [min(int(m), ceiling) for m in max_batches if m and m > 0]
    top = max(tops, default=1)
    rungs = {1 << k for k in range(top.bit_length()) if 1 << k <= top}
    return sorted(rungs | set(tops))


def largest_fitting_batch(spec: SweepSpec, plans: pl.DataFrame, ceiling: int) -> np.ndarray:
    """Largest batch (at most ``ceiling``) that fits, per row of ``plans``: the cost model's
    ``max_batch_size`` (solved exactly from memory(batch), see ``costs/memory.max_batch_size``)."""
    return np.clip(plans["max_batch_size"].to_numpy(), 0, ceiling)


def _plan_columns(plans: pl.DataFrame, batch: np.ndarray, auto: str | None = None) -> dict[str, Any]:
    """Cost-model input (as ``system.evaluate`` takes it) for every plan row at its own ``batch``;
    ``auto``: the dtype that ``dtype=auto`` resolved to (its rows go back as ``auto``, so the checkpoint
    recipe's per-layer dtypes apply again)."""
    cols: dict[str, Any] = {k: plans[k].to_numpy().astype(float) for k in INT_IDENTITY
                            if k in plans.columns and k != "batch_size"}
    cols["batch_size"] = batch.astype(float)
    cols.update({k: plans[k].to_numpy().astype(float) for k in EP_IDENTITY if k in plans.columns})
    for key in STR_AXES:
        choices = tuple(STR_AXES[key]) + ((DTYPE_AUTO,) if key == "dtype" else ())
        codes = np.asarray([choices.index(DTYPE_AUTO if key == "dtype" and v == auto else v)
                            for v in plans[key].cast(pl.String)], dtype=np.int64)
        cols[key] = Coded(choices, codes)
    return cols


def _bisect(ok: Callable[[np.ndarray], np.ndarray], hi: np.ndarray) -> np.ndarray:
    """Per element, the largest b in 0..hi with ok(b) true, for ok true up to a point and false after
    (b = 0 always counts as true; ``ok`` is called with one batch per element)."""
    lo, hi = np.zeros_like(hi), hi + 1  # invariant: ok(lo) (or lo = 0), not ok(hi) (or hi beyond range)
    while np.any(hi - lo > 1):
        mid = np.where(hi - lo > 1, (lo + hi) // 2, np.maximum(lo, 1))
        good = ok(mid)
        active = hi - lo > 1
        lo = np.where(active & good, mid, lo)
        hi = np.where(active & ~good, mid, hi)
    return lo


def exact_limits(spec: SweepSpec, plans: pl.DataFrame, sla: Sla, ceiling: int) -> pl.DataFrame:
    """Per plan (valid rows of a batch-1 probe): ``max_batch_size``, the largest batch (at most
    ``ceiling``) that fits, and ``max_batch_size_<key>`` for each SLA constraint, the largest batch up
    to that which meets it; all by bisection on the batch size, each round one engine call per system."""
    parts = [_system_limits(spec, str(m), str(h), group, sla, ceiling)
             for (m, h), group in plans.group_by("model_id", "hardware_id", maintain_order=True)]
    return pl.concat(parts) if parts else pl.DataFrame()


def _system_limits(spec: SweepSpec, model_id: str, hardware_id: str, plans: pl.DataFrame, sla: Sla,
                   ceiling: int) -> pl.DataFrame:
    model, sys_ = spec.models[model_id], spec.systems[hardware_id]
    asked = spec.axes.get("dtype", [])
    base = model.recipe.get("dtype", "bf16")
    # rows of dtype=auto: given back as auto unless that dtype was also asked for by name (then ambiguous:
    # the named one wins, as the recipe's per-layer dtypes differ only for expert-quantized checkpoints)
    auto = base if DTYPE_AUTO in asked and base not in asked else None

    def evaluate(batch: np.ndarray) -> pl.DataFrame:
        return results_frame(model_id, model, sys_, spec, _plan_columns(plans, batch, auto))

    def meets(key: str, bound: float) -> Callable[[np.ndarray], np.ndarray]:
        def ok(batch: np.ndarray) -> np.ndarray:
            v = evaluate(batch)[key].to_numpy()
            return np.nan_to_num(v <= bound if BOUNDS[key] == "max" else v >= bound).astype(bool)
        return ok

    memory = _bisect(lambda b: evaluate(b)["fits"].to_numpy(), np.full(plans.height, ceiling, dtype=np.int64))
    limits = {"max_batch_size": memory}
    for key, bound in sla.bounds.items():
        limits[f"max_batch_size_{key}"] = _bisect(meets(key, bound), memory)
    return plans.select([c for c in PLAN if c in plans.columns]).with_columns(
        *[pl.Series(k, v, dtype=pl.Int64) for k, v in limits.items()])


def limit_batches(limits: pl.DataFrame) -> list[int]:
    """Every plan's limits and the batch after each SLA limit (where a constraint is first missed)."""
    if limits.height == 0:
        return []
    keys = [c for c in limits.columns if c.startswith("max_batch_size")]
    values = {int(v) for k in keys for v in limits[k].to_list()}
    values |= {int(v) + 1 for k in keys if k != "max_batch_size" for v in limits[k].to_list()}
    return sorted(v for v in values if v > 0)


def run_capacity(spec: SweepSpec, settings: EngineSettings, out_dir: Path, config_yaml: str,
                 pareto: ParetoSettings, sla: Sla, ceiling: int) -> tuple[RunResult, pl.DataFrame]:
    """Probe, find each plan's exact limits, evaluate the batch ladder and the limits into
    ``out_dir/results.parquet``, write ``capacity.parquet``."""
    probe_spec = dataclasses.replace(spec, axes={**spec.axes, "batch_size": [1]})
    probe = run(probe_spec, dataclasses.replace(settings, progress=False))
    assert probe.results is not None
    limits = exact_limits(spec, probe.results.filter(pl.col("valid")), sla, ceiling)
    maxima = limits["max_batch_size"].to_list() if limits.height else []
    rungs = sorted(set(ladder(maxima, ceiling)) | {b for b in limit_batches(limits) if b <= max(maxima, default=1)})
    res = run(dataclasses.replace(spec, axes={**spec.axes, "batch_size": rungs}), settings,
              out_dir / "results.parquet", config_yaml, pareto)
    table = capacity_table(res.lazy(), sla)
    io.write_parquet(table, out_dir / "capacity.parquet", config_yaml)
    return res, table


def _violations(sla: Sla) -> list[pl.Expr]:
    out = []
    for key, bound in sla.bounds.items():
        ok = pl.col(key) <= bound if BOUNDS[key] == "max" else pl.col(key) >= bound
        out.append((pl.col("fits") & ~ok.fill_null(False)).alias(f"_miss_{key}"))
    return out


def capacity_table(lf: pl.LazyFrame, sla: Sla = NO_SLA) -> pl.DataFrame:
    """One row per plan: memory capacity, SLA capacity, the batch limit, what limits it, and the
    throughput and latency at that limit."""
    plan = [c for c in PLAN if c in lf.collect_schema().names()]
    meets = sla.meets() if sla else pl.col("fits")
    rows = lf.with_columns(meets.alias("meets_sla"), *_violations(sla)).with_columns(
        pl.col("batch_size").filter(pl.col("fits") & ~pl.col("meets_sla")).min().over(plan)
        .alias("_first_fail"))
    first_fail = pl.col("_first_fail")
    below = pl.col("meets_sla") & (first_fail.is_null() | (pl.col("batch_size") < first_fail))
    at_fail = pl.col("batch_size") == pl.col("_first_fail")
    agg = rows.sort("batch_size").group_by(plan, maintain_order=True).agg(
        pl.col("valid").any(), pl.col("reason").first(), pl.col("weights_gb_per_device").first(),
        pl.col("kv_cache_budget_gb_per_device").first(),
        pl.col("batch_size").filter(pl.col("fits")).max().alias("_largest_fit"),
        pl.col("batch_size").filter(below).max().alias("_sla_limit"),
        *[pl.col(f"_miss_{k}").filter(at_fail).any().alias(f"_miss_{k}") for k in sla.bounds],
    ).collect()
    limited = [_limit(r, sla) for r in agg.iter_rows(named=True)]
    agg = agg.with_columns(pl.col("_largest_fit").fill_null(0).alias("max_batch_size"),
                           pl.Series("batch_limit", [b for b, _ in limited], dtype=pl.Int64),
                           pl.Series("limited_by", [w for _, w in limited], dtype=pl.String),
                           pl.col("_sla_limit").alias("sla_max_batch_size") if sla else
                           pl.lit(None, dtype=pl.Int64).alias("sla_max_batch_size"))
    names = lf.collect_schema().names()
    at = rows.select(*plan, "batch_size", *[c for c in AT_LIMIT if c in names]).collect()
    out = agg.join(at.rename({"batch_size": "batch_limit"}), on=[*plan, "batch_limit"], how="left",
                   nulls_equal=True)
    first = [*plan, "weights_gb_per_device", "kv_cache_budget_gb_per_device", "max_batch_size",
             "sla_max_batch_size", "batch_limit", "limited_by"]
    return out.select(*first, *[c for c in AT_LIMIT if c in out.columns], "reason")


def _limit(row: dict, sla: Sla) -> tuple[int, str]:
    if not row["valid"]:
        return 0, "invalid plan"
    if row["_largest_fit"] is None:
        return 0, "memory (batch 1 does not fit)"
    missed = [k for k in sla.bounds if row.get(f"_miss_{k}")]
    if not missed:
        return int(row["_largest_fit"]), "memory"
    return int(row["_sla_limit"] or 0), "sla: " + ", ".join(missed)


def curves(lf: pl.LazyFrame, capacity: pl.DataFrame, sla: Sla = NO_SLA) -> pl.DataFrame:
    """The throughput/latency curve of each plan up to its memory capacity: the powers of two, its
    batch limit and its largest fitting batch (other plans' limits, also evaluated, are left out)."""
    plan = [c for c in PLAN if c in capacity.columns]
    meets = sla.meets() if sla else pl.col("fits")
    rows = lf.filter(pl.col("fits")).with_columns(meets.alias("meets_sla")).collect()
    own = capacity.select(*plan, "batch_limit", "max_batch_size")
    b = pl.col("batch_size")
    on_curve = ((b & (b - 1)) == 0) | (b == pl.col("batch_limit")) | (b == pl.col("max_batch_size"))
    return rows.join(own, on=plan, how="inner", nulls_equal=True).filter(on_curve).select(
        *plan, *CURVE).sort([*plan, "batch_size"])
