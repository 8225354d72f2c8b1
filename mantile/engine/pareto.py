"""Pareto fronts in Polars: minimize a latency column, maximize a throughput column, per group.

Two objectives: sort by latency (ties: higher throughput first), keep a row when its throughput beats
every row before it in its group: O(n log n). Three objectives (optional cost column, minimized): the
2-D front filter is applied after sorting, then a row is dropped if another row dominates it in all
three (checked only among the candidates, which are few).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl


def pareto_front(df: pl.DataFrame, latency: str = "tpot_ms", throughput: str = "throughput_tokens_per_s_per_device",
                 by: Sequence[str] = ("model_id", "hardware_id"), cost: str | None = None,
                 feasible_only: bool = True) -> pl.DataFrame:
    """Rows of ``df`` not dominated by another row of the same group (lower latency, higher throughput)."""
    for c in (latency, throughput, *by, *([cost] if cost else [])):
        if c not in df.columns:
            raise KeyError(f"pareto: column {c!r} not in the results; columns: {df.columns}")
    if feasible_only and "fits" in df.columns:
        df = df.filter(pl.col("fits"))
    df = df.filter(pl.col(latency).is_finite() & pl.col(throughput).is_finite())
    by = list(by)
    if cost is None:
        ordered = df.sort([*by, latency, throughput], descending=[False] * len(by) + [False, True])
        best_before = pl.col(throughput).cum_max().shift(1).over(by) if by else pl.col(throughput).cum_max().shift(1)
        return ordered.filter(pl.col(throughput) > best_before.fill_null(-np.inf))
    # three objectives: a point can be on the 3-D front while dominated in 2-D, so filter exactly.
    parts = []
    for _, g in df.group_by(by, maintain_order=True) if by else [((), df)]:
        lat, thr, cst = (g[c].to_numpy() for c in (latency, throughput, cost))
        keep = _front3(lat, -thr, cst)
        parts.append(g.filter(pl.Series(keep)))
    out = pl.concat(parts) if parts else df.head(0)
    return out.sort([*by, latency])


def _front3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Mask of points not dominated in (a, b, c), all minimized. Sort by a; sweep keeping a 2-D
    staircase of (b, c) of the points seen so far (O(n log n) with a sorted skyline, here O(n*k)
    with k the front size, fine for fronts of thousands)."""
    order = np.lexsort((c, b, a))
    keep = np.zeros(len(a), dtype=bool)
    front_b: list[float] = []
    front_c: list[float] = []
    for i in order:
        fb, fc = np.asarray(front_b), np.asarray(front_c)
        if len(fb) and np.any((fb <= b[i]) & (fc <= c[i])):
            continue
        keep[i] = True
        front_b.append(b[i])
        front_c.append(c[i])
    return keep
