"""Pareto fronts in Polars: minimize a latency column, maximize a throughput column, per group, and
optionally minimize a cost column too.

A row is on the front when no other row of its group is at least as good in every objective and
strictly better in one. Groups are, by default, one model on one system under one workload
(``DEFAULT_BY``): a 512-token prompt and an 8k-token one are different questions, so they never
share a front. Rows of a group with identical objectives (dp replicas have the same per-device
throughput and latency) are one point: the one with the fewest devices, then the smallest degrees,
is kept (``collapse_ties=False`` keeps them all). Only the objective columns are sorted; the front's
rows are gathered from the full table at the end.

- Two objectives, O(n log n): sort by latency (ties: higher throughput first); a row survives when
  its throughput beats the best throughput of every strictly faster row of its group and is the best
  of its own latency.
- Three objectives, O(n log n) plus pruning: sort by latency; sweep with a staircase of the
  (throughput, cost) pairs kept so far (bisect in a sorted list). Rows dominated by one of a few
  weighted-sum minimizers (which are on the front) are removed first, vectorized.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence

import numpy as np
import polars as pl

PIVOTS = 64  # weighted-sum minimizers used to prune the 3-D sweep
DEFAULT_BY = ("model_id", "hardware_id", "input_seq", "output_seq")  # one front per model, system, workload
#: among tied points, the first in this order is kept: fewest devices, then smallest degrees and batch
TIE_BREAK = ("num_devices", "dp", "pp", "tp", "cp", "ep", "sp", "embedding_tp", "batch_size")


def pareto_front(df: pl.DataFrame, latency: str = "tpot_ms",
                 throughput: str = "throughput_tokens_per_s_per_device",
                 by: Sequence[str] = DEFAULT_BY, cost: str | None = None,
                 feasible_only: bool = True, collapse_ties: bool = True) -> pl.DataFrame:
    """Rows of ``df`` not dominated by another row of the same group, sorted by group and latency;
    rows with the same objectives as another row of the group are dropped (``TIE_BREAK`` picks the
    one kept) unless ``collapse_ties`` is False."""
    objectives = [latency, throughput, *([cost] if cost else [])]
    for c in (*objectives, *by):
        if c not in df.columns:
            raise KeyError(f"pareto: column {c!r} not in the results; columns: {df.columns}")
    ok = pl.col("fits") if feasible_only and "fits" in df.columns else pl.lit(True)
    for c in objectives:
        ok = ok & pl.col(c).is_finite()
    row = pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row")
    narrow = df.select(row, *_codes(df, list(by)), *objectives, ok.alias("_ok")).filter("_ok")
    by = [c for c in by if narrow[c].n_unique() > 1]  # a chunk holds one model and one system
    rows = []
    for g in narrow.partition_by(by, maintain_order=True) if by else [narrow]:
        lat, thr = g[latency].to_numpy(), g[throughput].to_numpy()
        keep = front2(lat, -thr) if cost is None else front3(lat, -thr, g[cost].to_numpy())
        rows.append(g["_row"].to_numpy()[keep])
    # the ties and the order are settled on the few columns they read; the front's full rows are gathered
    # once, at the end (a front of fronts in the sweep's driver has ~110 columns and up to 350,000 rows)
    ties = [c for c in TIE_BREAK if c in df.columns] if collapse_ties else []
    front = df.select(row, *dict.fromkeys([*by, *objectives, *ties]))[np.concatenate(rows) if rows else []]
    if collapse_ties and front.height > 1:
        front = (front.sort(ties, maintain_order=True) if ties else front).unique(
            subset=[*by, *objectives], keep="first", maintain_order=True)
    return df[front.sort([*by, latency], maintain_order=True)["_row"].to_numpy()]


def _codes(df: pl.DataFrame, by: list[str]) -> list[pl.Expr]:
    """Group columns as integers (categorical codes), which sort and hash much faster than strings."""
    out = []
    for c in by:
        dtype = df.schema[c]
        if isinstance(dtype, (pl.Categorical, pl.Enum)):
            out.append(pl.col(c).to_physical())
        elif dtype == pl.String:
            out.append(pl.col(c).rank("dense"))
        else:
            out.append(pl.col(c))
    return out


def front2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mask of points not dominated in (a, b), both minimized; identical points are all kept.

    Sort by a; for each run of equal a, a point survives when its b is the run's best and beats the
    best b of every run before (points with a strictly smaller a). One argsort: O(n log n)."""
    order = np.argsort(a)
    sa, sb = a[order], b[order]
    run_start = np.ones(len(sa), dtype=bool)
    run_start[1:] = sa[1:] != sa[:-1]
    starts = np.flatnonzero(run_start)
    run_best = np.minimum.reduceat(sb, starts) if len(sb) else sb
    best_before = np.concatenate(([np.inf], np.minimum.accumulate(run_best)[:-1]))
    run = np.cumsum(run_start) - 1
    keep = np.zeros(len(a), dtype=bool)
    keep[order] = (sb == run_best[run]) & (sb < best_before[run])
    return keep


def _prune(pts: np.ndarray) -> np.ndarray:
    """Mask of rows not dominated by any of a few weighted-sum minimizers (all objectives minimized)."""
    lo, span = pts.min(axis=0), np.ptp(pts, axis=0)
    scaled = (pts - lo) / np.where(span > 0, span, 1.0)
    weights = np.random.default_rng(0).dirichlet(np.ones(pts.shape[1]), PIVOTS) + 1e-3
    pivots = np.unique(np.argmin(weights @ scaled.T, axis=1))
    cols = [np.ascontiguousarray(pts[:, k]) for k in range(pts.shape[1])]
    alive = np.ones(len(pts), dtype=bool)
    for i in pivots:
        worse_eq = np.ones(len(pts), dtype=bool)
        worse = np.zeros(len(pts), dtype=bool)
        for col in cols:
            worse_eq &= col >= col[i]
            worse |= col > col[i]
        alive &= ~(worse_eq & worse)
    return alive


def _unique_rows(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows sorted lexicographically (first column first), and each input row's position."""
    order = np.lexsort(pts.T[::-1])
    s = pts[order]
    new = np.ones(len(s), dtype=bool)
    new[1:] = np.any(s[1:] != s[:-1], axis=1)
    inverse = np.empty(len(pts), dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    return s[new], inverse


def front3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Mask of points not dominated in (a, b, c), all minimized; identical points are all kept.

    Sweep in lexicographic (a, b, c) order, so any dominating point comes first. The staircase holds
    the (b, c) of the front found so far, b ascending and c strictly descending: a point is dominated
    when the staircase entry with the largest b <= its b has c <= its c."""
    pts = np.column_stack([a, b, c]).astype(float)
    keep = np.zeros(len(pts), dtype=bool)
    if len(pts) == 0:
        return keep
    alive = np.flatnonzero(_prune(pts)) if len(pts) > 4 * PIVOTS else np.arange(len(pts))
    uniq, inverse = _unique_rows(pts[alive])
    stair_b: list[float] = []
    stair_c: list[float] = []
    on_front = np.zeros(len(uniq), dtype=bool)
    for i, (_, pb, pc) in enumerate(uniq.tolist()):
        j = bisect_right(stair_b, pb) - 1
        if j >= 0 and stair_c[j] <= pc:
            continue
        on_front[i] = True
        lo = bisect_left(stair_b, pb)
        hi = lo
        while hi < len(stair_c) and stair_c[hi] >= pc:
            hi += 1
        stair_b[lo:hi] = [pb]
        stair_c[lo:hi] = [pc]
    keep[alive] = on_front[inverse]
    return keep
