"""Batch-capacity study (``+study=capacity``): how many concurrent sequences each plan can serve.

For every model, system, plan and input/output length:

1. a probe at batch 1 gives the KV-cache budget per device and ``max_batch_size``, the exact
   largest batch that fits (weights + KV cache + activations, which grow with the batch until the
   prefill chunk is full; solved in closed form by the cost model);
2. a batch ladder 1, 2, 4, ... up to the largest capacity (each plan's own capacity added) is
   evaluated: the throughput/latency curve of each plan up to its capacity;
3. the batch limit is the largest ladder batch that fits and, when an SLA is set, below the first
   batch that misses it; ``limited_by`` says which ran out first: memory, or the SLA constraint(s)
   missed at the next batch.

``capacity_table`` works on any results table with several batch sizes per plan (one job's or a
merged multirun's).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import polars as pl

from mantile.analysis.sla import BOUNDS, NO_SLA, Sla
from mantile.engine import io
from mantile.engine.runner import EngineSettings, ParetoSettings, RunResult, run
from mantile.engine.spec import SweepSpec
from mantile.engine.table import IDENTITY

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


def run_capacity(spec: SweepSpec, settings: EngineSettings, out_dir: Path, config_yaml: str,
                 pareto: ParetoSettings, sla: Sla, ceiling: int) -> tuple[RunResult, pl.DataFrame]:
    """Probe, evaluate the batch ladder into ``out_dir/results.parquet``, write ``capacity.parquet``."""
    probe_spec = dataclasses.replace(spec, axes={**spec.axes, "batch_size": [1]})
    probe = run(probe_spec, dataclasses.replace(settings, progress=False))
    assert probe.results is not None
    maxima: list[int] = []
    for model_id, hardware_id in probe.results.select("model_id", "hardware_id").unique().iter_rows():
        one = dataclasses.replace(spec, models={model_id: spec.models[model_id]},
                                  systems={hardware_id: spec.systems[hardware_id]})
        plans = probe.results.filter((pl.col("model_id") == model_id) & (pl.col("hardware_id") == hardware_id)
                                     & pl.col("valid"))
        maxima += largest_fitting_batch(one, plans, ceiling).tolist() if plans.height else []
    rungs = ladder(maxima, ceiling)
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
    """The throughput/latency curve of each plan: its ladder rows that fit, up to its memory capacity."""
    plan = [c for c in PLAN if c in capacity.columns]
    meets = sla.meets() if sla else pl.col("fits")
    rows = lf.filter(pl.col("fits")).with_columns(meets.alias("meets_sla")).collect()
    return rows.join(capacity.select(plan), on=plan, how="semi", nulls_equal=True).select(
        *plan, *CURVE).sort([*plan, "batch_size"])
