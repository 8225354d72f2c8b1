"""Service-level objectives: which points meet them, the best of those, and how far the rest miss.

``sla.ttft_ms`` and ``sla.tpot_ms`` are upper bounds, ``sla.tokens_per_s_per_user`` a lower bound;
null means no constraint. A point meets the SLA when it fits in memory and meets every bound. The
miss of a failing point is relative: value / bound - 1 for an upper bound, bound / value - 1 for a
lower bound (0.25 = 25 % too slow); the best failing point is the one whose worst miss is smallest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from mantile.specs import SpecError

#: constraint -> "max" (the column must be at most the bound) or "min" (at least)
BOUNDS: dict[str, str] = {"ttft_ms": "max", "tpot_ms": "max", "tokens_per_s_per_user": "min"}
RANK_BY = ("throughput_tokens_per_s_per_device", "throughput_tokens_per_s_per_usd_hour")


@dataclass(frozen=True)
class Sla:
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    tokens_per_s_per_user: float | None = None

    def __post_init__(self) -> None:
        for key in BOUNDS:
            v = getattr(self, key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0
                                  or math.isinf(v)):
                raise SpecError("sla", key, v, "a positive number, or null for no constraint")

    @classmethod
    def from_config(cls, raw: Mapping[str, Any] | None) -> Sla:
        raw = dict(raw or {})
        unknown = sorted(set(raw) - set(BOUNDS))
        if unknown:
            raise SpecError("sla", unknown[0], raw[unknown[0]], f"valid keys: {list(BOUNDS)}")
        return cls(**raw)

    @property
    def bounds(self) -> dict[str, float]:
        """The active constraints: column -> bound."""
        return {k: float(v) for k in BOUNDS if (v := getattr(self, k)) is not None}

    def __bool__(self) -> bool:
        return bool(self.bounds)

    def describe(self) -> str:
        return ", ".join(f"{k} {'<=' if BOUNDS[k] == 'max' else '>='} {v:g}" for k, v in self.bounds.items())

    def miss(self, key: str) -> pl.Expr:
        """Relative miss of constraint ``key`` (0 when met)."""
        bound, col = self.bounds[key], pl.col(key)
        rel = col / bound - 1.0 if BOUNDS[key] == "max" else bound / col - 1.0
        return pl.max_horizontal(rel, pl.lit(0.0)).alias(f"miss_{key}")

    def meets(self) -> pl.Expr:
        ok = pl.col("fits")
        for key, bound in self.bounds.items():
            ok = ok & (pl.col(key) <= bound if BOUNDS[key] == "max" else pl.col(key) >= bound)
        return ok.fill_null(False)

    def latency_bound_ms(self, latency: str) -> float | None:
        """The bound on ``latency`` implied by the SLA (tokens/s per user bounds tpot_ms = 1000 / it)."""
        bounds = self.bounds
        implied = [bounds[latency]] if latency in bounds else []
        if latency == "tpot_ms" and "tokens_per_s_per_user" in bounds:
            implied.append(1000.0 / bounds["tokens_per_s_per_user"])
        return min(implied) if implied else None


def meeting(lf: pl.LazyFrame, sla: Sla, top: int = 10, by: str = RANK_BY[0]) -> pl.DataFrame:
    """The ``top`` points that meet the SLA, best first by ``by`` (descending)."""
    return lf.filter(sla.meets() & pl.col(by).is_finite()).sort(by, descending=True).head(top).collect()


def best_failing(lf: pl.LazyFrame, sla: Sla) -> pl.DataFrame:
    """The fitting point that misses the SLA by the least (its worst relative miss), with its misses."""
    misses = [sla.miss(k) for k in sla.bounds]
    return (lf.filter(pl.col("fits") & ~sla.meets()).with_columns(misses)
            .with_columns(pl.max_horizontal([pl.col(f"miss_{k}") for k in sla.bounds]).alias("worst_miss"))
            .sort(["worst_miss", RANK_BY[0]], descending=[False, True]).head(1).collect())


def count_meeting(lf: pl.LazyFrame, sla: Sla) -> tuple[int, int]:
    """(points meeting the SLA, points that fit)."""
    row = lf.select(sla.meets().sum().alias("ok"), pl.col("fits").sum().alias("fits")).collect().row(0)
    return int(row[0] or 0), int(row[1] or 0)


def miss_text(row: Mapping[str, Any], sla: Sla) -> str:
    """'ttft_ms 612.3 > 500 (22.5% over)' for each constraint the point misses."""
    parts = []
    for key, bound in sla.bounds.items():
        if (row.get(f"miss_{key}") or 0.0) <= 0:
            continue
        value = row[key]
        if BOUNDS[key] == "max":
            parts.append(f"{key} {value:.4g} > {bound:g} ({value / bound - 1:.1%} over)")
        else:
            parts.append(f"{key} {value:.4g} < {bound:g} ({1 - value / bound:.1%} short)")
    return "; ".join(parts)


NO_SLA = Sla()
