"""Error bands: how far the cost model has been from measured and published results, per regime.

``conf/bands.csv`` (written by ``benchmarks/make_bands.py``, never by hand) holds, per regime, the 10th
and 90th percentiles of the ratio r = measured time / predicted time over the rows ``validate``
compares (a throughput row counts as time per token: r = predicted throughput / measured throughput),
with the number of residuals and source families behind them. A regime is (engine, hardware
generation, dtype, dense or MoE, load key); ``*`` matches anything. A point takes the most specific row
that matches it. Rows less specific than the full regime are backed-off bands: a regime with too few
residuals uses a coarser one, widened (``widen`` > 1: the log-ratio percentiles are stretched about the
median), and its ``basis`` says so.

A point's band: ``ttft_p10_ms = ttft_ms * p10_ratio`` (never below the physics floor), ``ttft_p90_ms =
ttft_ms * p90_ratio``; the same for TPOT; throughput p10 = throughput / p90_ratio and p90 = throughput /
p10_ratio (never above the ceiling). It is an accuracy statement about the model (where measured
results of this kind have fallen relative to its prediction), not a run-to-run spread.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path

from mantile.specs.catalog import conf_dir
from mantile.specs.errors import SpecError

REGIME = ("engine", "generation", "dtype", "moe", "load")
ANY = "*"
FILE = "bands.csv"


@dataclass(frozen=True)
class Band:
    """One row of ``conf/bands.csv``: a regime and the residual percentiles behind its band."""

    engine: str
    generation: str
    dtype: str
    moe: str
    load: str
    residuals: int
    families: int
    p10_ratio: float
    p90_ratio: float
    basis: str

    def matches(self, key: tuple[str, ...]) -> bool:
        return all(mine in (ANY, theirs) for mine, theirs in zip(self.regime, key, strict=True))

    @property
    def regime(self) -> tuple[str, ...]:
        return (self.engine, self.generation, self.dtype, self.moe, self.load)

    @property
    def specificity(self) -> int:
        return sum(v != ANY for v in self.regime)


def read(path: Path) -> tuple[Band, ...]:
    """The bands of a CSV file (``#`` lines are comments), most specific first."""
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    out = []
    for number, row in enumerate(csv.DictReader(lines), 2):
        try:
            band = Band(**{k: row[k] for k in REGIME}, residuals=int(row["residuals"]), families=int(row["families"]),
                        p10_ratio=float(row["p10_ratio"]), p90_ratio=float(row["p90_ratio"]), basis=row["basis"])
        except (KeyError, TypeError, ValueError) as e:
            raise SpecError(f"{path}:{number}", "row", str(e), "the columns of benchmarks/make_bands.py") from None
        if not 0 < band.p10_ratio <= band.p90_ratio:
            raise SpecError(f"{path}:{number}", "p10_ratio", band.p10_ratio, "0 < p10_ratio <= p90_ratio")
        out.append(band)
    if not any(b.specificity == 0 for b in out):
        raise SpecError(str(path), "bands", "no catch-all row", "a row with * in every regime column")
    return tuple(sorted(out, key=lambda b: -b.specificity))


@functools.lru_cache(maxsize=1)
def table() -> tuple[Band, ...]:
    return read(conf_dir() / FILE)


@functools.lru_cache(maxsize=4096)
def find(engine: str, generation: str, dtype: str, moe: bool, load: str) -> Band:
    """The most specific band of this regime (the catch-all row at worst)."""
    key = (engine, generation, dtype, "moe" if moe else "dense", load)
    return next(b for b in table() if b.matches(key))
