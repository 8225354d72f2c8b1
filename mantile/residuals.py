"""Error bands from ``validate`` residuals: per regime, the 10th and 90th percentiles of r = measured /
predicted time (``Prediction.time_ratio``), with back-off for regimes with little evidence, and the
leave-one-source-family-out coverage that says whether the bands mean what they claim.

``benchmarks/make_bands.py`` writes ``build(...)`` to ``conf/bands.csv`` (read by ``specs/bands.py``);
``validate`` prints ``coverage(...)`` per engine. How a band is made:

1. Residuals: every published row ``validate`` compares (its engine's profile, its stated load) and
   our whole-model GPU measurements (``pytorch`` profile, fixed batch). Layer rows are not results rows
   and are left out. A throughput row is a time per token: r = predicted / measured throughput.
2. Regime: (engine, hardware generation, dtype, dense or MoE, load key). A regime with at least
   ``MIN_RESIDUALS`` residuals gets its own band; every other point backs off to its engine and load
   key, then its engine, then all residuals: the bands of those coarser levels are widened by
   ``WIDEN[level]`` (log-percentiles stretched about the median) because a point that lands there is
   in a regime the evidence does not cover (a generation with priors only, a new engine or dtype).
   A band from one source family only is widened by ``ONE_FAMILY`` more: its spread is one
   publisher's setup, not the model's error across setups.
3. Percentiles of log r with each source family weighing the square root of its rows
   (``weighted_quantiles``; a row counts 1 / sqrt(its family's rows in the group)), so a 261-row sweep
   of one publisher does not outvote a 9-row table of another 261 to 9 (16 to 3). The band is meant
   for a deployment none of them measured, and what differs most between publishers is their bias (the
   NIM rows sit within 5% of the model, the 2023 TensorRT-LLM rows 40% above it), not their spread.
   The square root is the midpoint between pooling rows (a family weighs its rows) and weighing
   families equally (a 2-row family would weigh as much as a 261-row one); it was chosen so, not
   fitted: the held-out coverage is within 1-4 points either way (README "Error bands").
4. The band holds the model's own prediction (r = 1): a regime's bias is a property of the families
   that measured it (their software version, their benchmark client) and does not carry to a new
   one, so the band stretches to r = 1 on the side where its percentiles stop short of it.

The widening factors are the one tuned choice here. They were set once, by the held-out coverage
that ``validate`` prints (README "Error bands"), not per row or per source; rules 3 and 4 are not
tuned.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from mantile.specs import bands, load_hardware, load_model
from mantile.validate import Prediction

MIN_RESIDUALS = 8
#: level (the regime columns it keeps) -> widening of its log-percentiles about the median
LEVELS: tuple[tuple[tuple[str, ...], float], ...] = (
    (bands.REGIME, 1.0), (("engine", "load"), 1.25), (("engine",), 1.5), ((), 2.0))
ONE_FAMILY = 1.25
COVERAGE_RANGE = (0.70, 0.90)


@dataclass(frozen=True)
class Residual:
    """One compared row: its regime, source family and time ratio."""

    regime: tuple[str, str, str, str, str]
    family: str
    ratio: float
    where: str = ""


def residuals(preds: Iterable[Prediction], family_of: Callable[[Prediction], str] | None = None) -> list[Residual]:
    """The residuals of the whole-model and published predictions that carry a regime."""
    out = []
    for p in preds:
        if p.kind not in ("published", "model_prefill", "model_decode") or not p.metric:
            continue
        if not (math.isfinite(p.time_ratio) and p.time_ratio > 0):
            continue
        engine = p.engine or "pytorch"
        regime = (engine, _generation(p.hardware), p.dtype, "moe" if _moe(p.model) else "dense", p.load)
        family = family_of(p) if family_of else (p.group or p.where.split(":")[0])
        out.append(Residual(regime, family, p.time_ratio, p.where))
    return out


def _generation(hardware: str) -> str:
    return load_hardware(hardware).device.generation


def _moe(model: str) -> bool:
    return load_model(model).is_moe


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: list[float]) -> np.ndarray:
    """Quantiles of ``values`` where each carries ``weights`` (mid-point plotting positions, linear
    interpolation between them; with equal weights, the Hazen quantiles (i - 0.5) / n)."""
    order = np.argsort(values, kind="stable")
    v, w = np.asarray(values, dtype=float)[order], np.asarray(weights, dtype=float)[order]
    positions = (np.cumsum(w) - 0.5 * w) / w.sum()
    return np.interp(qs, positions, v)


def _band(level: tuple[str, ...], key: tuple[str, ...], rs: list[Residual], widen: float) -> bands.Band:
    logs = np.log([r.ratio for r in rs])
    per_family = Counter(r.family for r in rs)
    families = len(per_family)
    if families == 1:
        widen *= ONE_FAMILY
    weights = np.array([per_family[r.family] ** -0.5 for r in rs])  # a family weighs sqrt(its rows)
    med, q10, q90 = weighted_quantiles(logs, weights, [0.5, 0.1, 0.9])
    # the band holds the prediction itself (log r = 0): a regime's bias is its families', not a new one's
    lo, hi = min(med - widen * (med - q10), 0.0), max(med + widen * (q90 - med), 0.0)
    cols = dict(zip(level, key, strict=True))
    regime = {c: cols.get(c, bands.ANY) for c in bands.REGIME}
    what = "/".join(v for v in regime.values() if v != bands.ANY) or "all regimes"
    basis = f"{len(rs)} residuals from {families} source families ({what})"
    if level != bands.REGIME:
        basis += f"; fewer than {MIN_RESIDUALS} for the point's own regime: backed off to {what}"
    if widen != 1.0:
        basis += f", widened x{widen:g}"
    return bands.Band(**regime, residuals=len(rs), families=families, p10_ratio=float(np.exp(lo)),
                      p90_ratio=float(np.exp(hi)), basis=basis)


def build(rs: list[Residual]) -> tuple[bands.Band, ...]:
    """The band table of these residuals (every level's groups with enough evidence, and the catch-all)."""
    out = []
    for level, widen in LEVELS:
        idx = [bands.REGIME.index(c) for c in level]
        groups: dict[tuple[str, ...], list[Residual]] = {}
        for r in rs:
            groups.setdefault(tuple(r.regime[i] for i in idx), []).append(r)
        for key, members in sorted(groups.items()):
            if len(members) >= MIN_RESIDUALS or (not level and members):
                out.append(_band(level, key, members, widen))
    return tuple(sorted(out, key=lambda b: -b.specificity))


def find(table: tuple[bands.Band, ...], regime: tuple[str, ...]) -> bands.Band | None:
    return next((b for b in table if b.matches(regime)), None)


def coverage(rs: list[Residual]) -> dict[str, tuple[int, int]]:
    """Leave one source family out: for each family, the bands built from every other family; per
    engine, (rows inside their band, rows with a band)."""
    out: dict[str, tuple[int, int]] = {}
    for family in sorted({r.family for r in rs}):
        table = build([r for r in rs if r.family != family])
        for r in rs:
            if r.family != family:
                continue
            band = find(table, r.regime)
            if band is None:
                continue
            inside, total = out.get(r.regime[0], (0, 0))
            out[r.regime[0]] = (inside + (band.p10_ratio <= r.ratio <= band.p90_ratio), total + 1)
    return out


def coverage_report(rs: list[Residual]) -> str:
    cov = coverage(rs)
    lines = [f"\n\n{'held-out 80% band coverage (leave one source family out)':<60} {'rows':>5} {'inside':>8}"]
    for engine, (inside, total) in sorted(cov.items()):
        lines.append(f"{engine:<60} {total:>5} {inside / total:>8.0%}")
    inside, total = (sum(v[i] for v in cov.values()) for i in (0, 1))
    if total:
        lines.append(f"{'all':<60} {total:>5} {inside / total:>8.0%}")
    return "\n".join(lines)


HEADER = """# Error bands of the cost model, per regime: written by benchmarks/make_bands.py (do not edit by hand).
# ratio = measured time / predicted time (a throughput row: predicted / measured throughput), over the rows
# `python -m mantile.validate` compares: {sources}.
# p10_ratio / p90_ratio: 10th / 90th percentile of that ratio; residuals, families: the rows and source
# families behind them. How the levels, back-off and widening work: mantile/residuals.py; README "Error bands".
"""


def to_csv(table: tuple[bands.Band, ...], sources: str) -> str:
    cols = [*bands.REGIME, "residuals", "families", "p10_ratio", "p90_ratio", "basis"]
    lines = [HEADER.format(sources=sources).rstrip("\n"), ",".join(cols)]
    for b in table:
        lines.append(",".join([*b.regime, str(b.residuals), str(b.families), f"{b.p10_ratio:.4f}",
                               f"{b.p90_ratio:.4f}", f'"{b.basis}"']))
    return "\n".join(lines) + "\n"
