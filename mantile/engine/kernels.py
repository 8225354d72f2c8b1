"""Per-kernel tables for chosen points: why a point's TTFT and TPOT are what they are, kernel by kernel.

``kernel_frame`` takes result rows (e.g. a Pareto front) and lists, for each, the named kernels of
its prefill and decode steps (and, with speculative decoding, the ``draft`` passes of a decode step;
``serving.system.step_kernels``): phase, layer type, block, kernel,
instances in the pass, time per instance and in total. The CLI writes it as ``kernels.parquet``.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from mantile.engine.spec import SweepSpec
from mantile.serving.system import step_kernels

#: Result columns that define a point for the cost model.
POINT_KEYS = ("batch_size", "input_seq", "output_seq", "tp", "pp", "dp", "ep", "cp", "sp", "embedding_tp",
              "dtype", "kv_dtype", "spec_method", "spec_num_tokens", "spec_acceptance", "prefix_cache_hit_rate")
#: Points listed at most (a front is usually a few dozen points).
MAX_POINTS = 200


def kernel_frame(spec: SweepSpec, rows: pl.DataFrame, max_points: int = MAX_POINTS) -> pl.DataFrame:
    """The named kernels of the first ``max_points`` valid rows (each row's identity columns first)."""
    out: list[dict[str, Any]] = []
    valid = rows.filter(pl.col("valid")) if "valid" in rows.columns else rows
    for row in valid.head(max_points).iter_rows(named=True):
        model, system = spec.models[row["model_id"]], spec.systems[row["hardware_id"]]
        point = {k: (str(row[k]) if k in ("dtype", "kv_dtype", "spec_method") else row[k]) for k in POINT_KEYS
                 if k in row}
        ident = {"model_id": row["model_id"], "hardware_id": row["hardware_id"], **point}
        for k in step_kernels(model, system.spec, system.eff, spec.serving, point, spec.enforce_max_position):
            out.append({**ident, **k})
    return pl.DataFrame(out)


def top_kernels_text(kernels: pl.DataFrame, phase: str = "decode", n: int = 8) -> str:
    """The ``n`` kernels that take most of the first point's ``phase`` step, with their share."""
    if kernels.is_empty():
        return ""
    first = kernels.filter((pl.col("phase") == phase) & pl.all_horizontal(
        [pl.col(k) == kernels[k][0] for k in POINT_KEYS]))
    total = first["total_ms"].sum()
    top = (first.group_by("layer_type", "kernel").agg(pl.col("total_ms").sum())
           .sort("total_ms", descending=True).head(n))
    p = {k: kernels[k][0] for k in POINT_KEYS}
    plan = (f"{p['dtype']} tp{p['tp']} pp{p['pp']} dp{p['dp']} ep{p['ep']} cp{p['cp']}, batch {p['batch_size']}, "
            f"{p['input_seq']} in / {p['output_seq']} out")
    lines = [f"{phase} step of the first Pareto point ({plan}): {total:.3g} ms"]
    for r in top.iter_rows(named=True):
        lines.append(f"  {r['layer_type']:<12} {r['kernel']:<24} {r['total_ms']:>9.3f} ms  "
                     f"{100 * r['total_ms'] / total:5.1f}%")
    return "\n".join(lines)
