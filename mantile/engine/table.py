"""Turn cost-model arrays into the results table (Polars), with reasons and names.

The column order and names are the results-table contract of DESIGN.md; ``SCHEMA_VERSION`` goes into
every Parquet file and changes whenever a column changes meaning.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from mantile.costs import system
from mantile.costs.system import Coded
from mantile.engine.grid import chunk_columns
from mantile.engine.spec import STR_AXES, SweepSpec, System
from mantile.specs import ModelSpec

SCHEMA_VERSION = "1"
IDENTITY = ("model_id", "hardware_id", "stack", "num_devices", "dtype", "kv_dtype", "tp", "pp", "dp", "ep",
            "cp", "sp", "embedding_tp", "batch_size", "input_seq", "output_seq")
METRICS = ("ttft_ms", "tpot_ms", "e2e_latency_ms", "throughput_tokens_per_s", "throughput_tokens_per_s_per_device",
           "decode_throughput_tokens_per_s", "tokens_per_s_per_user", "weights_gb_per_device",
           "kv_cache_gb_per_device", "activation_gb_per_device", "memory_gb_per_device",
           "usable_memory_gb_per_device", "kv_cache_budget_gb_per_device", "max_batch_size", "fits", "valid",
           "reason", "prefill_bound", "decode_bound")
BOUND_ENUM = pl.Enum(list(system.BOUNDS))


def _column(key: str, value: Any, n: int) -> pl.Series:
    if isinstance(value, Coded):
        return pl.Series(key, list(value.choices), dtype=pl.Enum(list(STR_AXES[key]))).gather(value.codes)
    return pl.Series(key, np.broadcast_to(value, n).astype(np.int64))


def evaluate_chunk(model_id: str, model: ModelSpec, sys: System, spec: SweepSpec, start: int, stop: int
                   ) -> pl.DataFrame:
    """Evaluate grid points start..stop-1 of one (model, hardware) pair into a results DataFrame."""
    cols = chunk_columns(spec.axes, start, stop)
    cols.setdefault("kv_dtype", cols["dtype"])
    cols.setdefault("embedding_tp", cols["tp"])
    return results_frame(model_id, model, sys, spec, cols)


def results_frame(model_id: str, model: ModelSpec, sys: System, spec: SweepSpec, cols: dict[str, Any]
                  ) -> pl.DataFrame:
    n = len(next(v for v in cols.values() if isinstance(v, np.ndarray)))
    out = system.evaluate(model, sys.spec, sys.eff, spec.stack, cols, spec.options)
    data: dict[str, pl.Series] = {
        "model_id": pl.Series("model_id", [model_id]).cast(pl.Categorical).extend_constant(model_id, n - 1),
        "hardware_id": pl.Series("hardware_id", [sys.hardware_id]).cast(pl.Categorical)
        .extend_constant(sys.hardware_id, n - 1),
        "stack": pl.Series("stack", [spec.stack.name]).cast(pl.Categorical).extend_constant(spec.stack.name, n - 1),
        "num_devices": pl.Series("num_devices", out["num_devices"].astype(np.int64)),
    }
    for key in ("dtype", "kv_dtype", "tp", "pp", "dp", "ep", "cp", "sp", "embedding_tp", "batch_size",
                "input_seq", "output_seq"):
        data[key] = _column(key, cols[key], n)
    df = pl.DataFrame(data)
    metrics = {k: v for k, v in out.items() if k not in ("num_devices", "invalid_code")}
    for phase in ("prefill", "decode"):
        metrics[f"{phase}_bound"] = pl.Series(list(system.BOUNDS), dtype=BOUND_ENUM).gather(out[f"{phase}_bound"])
    df = df.hstack([pl.Series(k, v) for k, v in metrics.items()])
    messages = system.reason_messages(model, sys.spec, sys.eff)
    invalid_text = pl.Series([None] + [messages.get(i, "") for i in range(1, max(messages) + 1)], dtype=pl.String)
    reason = invalid_text.gather(out["invalid_code"].astype(np.int64))
    df = df.with_columns(pl.Series("reason", reason)).with_columns(
        pl.when(pl.col("valid") & ~pl.col("fits")).then(
            pl.format("does not fit: needs {} GB per device, {} GB usable",
                      pl.col("memory_gb_per_device").round(1), pl.col("usable_memory_gb_per_device").round(1)))
        .otherwise(pl.col("reason")).alias("reason"))
    df = _fill_plan_values(df)
    ordered = [c for c in IDENTITY if c in df.columns] + [c for c in METRICS if c in df.columns]
    return df.select(ordered + [c for c in df.columns if c not in ordered])


def _fill_plan_values(df: pl.DataFrame) -> pl.DataFrame:
    """Put the row's own plan values into invalid-plan messages ('tp={tp}' -> 'tp=3')."""
    if df["reason"].null_count() == df.height:
        return df
    expr = pl.col("reason")
    for key in ("tp", "ep", "sp", "cp", "pp"):
        expr = expr.str.replace_all("{" + key + "}", pl.col(key).cast(pl.String), literal=True)
    return df.with_columns(expr.alias("reason"))
