"""Pareto plots (matplotlib, Agg backend: no display needed): one PNG per front group.

Every fitting point is drawn in grey (a sample of at most ``MAX_BACKGROUND_POINTS``), points that meet
the SLA in green, the front as a red line with each point labelled by its plan, and the region the
SLA allows on the latency axis shaded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from mantile.analysis.sla import NO_SLA, Sla
from mantile.analysis.summary import plan_label

MAX_BACKGROUND_POINTS = 20_000
MAX_LABELS = 24


def _sample(lf: pl.LazyFrame, columns: list[str]) -> pl.DataFrame:
    n = lf.select(pl.len()).collect().item()
    step = max(1, n // MAX_BACKGROUND_POINTS)
    return lf.select(columns).gather_every(step).collect() if step > 1 else lf.select(columns).collect()


def _name(key: tuple) -> str:
    return "_".join(re.sub(r"[^A-Za-z0-9._-]+", "-", str(k)) for k in key) if key else ""


def plot_fronts(lf: pl.LazyFrame, front: pl.DataFrame, out_dir: Path, latency: str, throughput: str,
                by: Sequence[str], sla: Sla = NO_SLA) -> list[Path]:
    """Write ``pareto_<group>.png`` (``pareto.png`` when ``by`` is empty) next to pareto.parquet."""
    by = [c for c in by if c in front.columns]
    fitting = lf.filter(pl.col("fits") & pl.col(latency).is_finite() & pl.col(throughput).is_finite())
    meets = sla.meets() if sla else pl.lit(False)
    cols = [*by, latency, throughput]
    background = _sample(fitting.with_columns(meets.alias("_meets")), [*cols, "_meets"])
    paths = []
    groups = front.partition_by(by, as_dict=True, maintain_order=True) if by else {(): front}
    for key, group in groups.items():
        pts = background
        for col, value in zip(by, key, strict=True):
            pts = pts.filter(pl.col(col).cast(pl.String) == str(value))
        name = _name(key)
        path = Path(out_dir) / (f"pareto_{name}.png" if name else "pareto.png")
        title = " on ".join(str(k) for k in key) if key else "all models and systems"
        _draw(pts, group, path, latency, throughput, sla, title)
        paths.append(path)
    return paths


def _draw(pts: pl.DataFrame, front: pl.DataFrame, path: Path, latency: str, throughput: str, sla: Sla,
          title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 6.5), dpi=120)
    rest = pts.filter(~pl.col("_meets"))
    ok = pts.filter(pl.col("_meets"))
    ax.scatter(rest[latency], rest[throughput], s=6, c="0.75", label=f"fitting points ({pts.height:,} drawn)",
               rasterized=True)
    if ok.height:
        ax.scatter(ok[latency], ok[throughput], s=8, c="tab:green", alpha=0.6, label="meets the SLA",
                   rasterized=True)
    f = front.sort(latency)
    ax.plot(f[latency], f[throughput], "-o", c="tab:red", ms=5, lw=1.5, label=f"Pareto front ({f.height})")
    if sla:
        good = f.filter(sla.meets())
        if good.height:
            ax.scatter(good[latency], good[throughput], s=110, facecolors="none", edgecolors="tab:green",
                       lw=1.8, label="front points meeting the SLA", zorder=3)
    step = max(1, f.height // MAX_LABELS)
    for i, row in enumerate(f.iter_rows(named=True)):
        if i % step == 0 or i == f.height - 1:
            ax.annotate(plan_label(row), (row[latency], row[throughput]), textcoords="offset points",
                        xytext=(5, 4), fontsize=7, color="tab:red")
    lo, hi = pts[latency].min(), pts[latency].max()
    if isinstance(lo, float) and isinstance(hi, float) and lo > 0 and hi / lo > 50:
        ax.set_xscale("log")
    bound = sla.latency_bound_ms(latency)
    if bound is not None:
        left, right = ax.get_xlim()
        ax.axvspan(left, bound, color="tab:green", alpha=0.08, label=f"SLA: {latency} <= {bound:g}")
        ax.axvline(bound, color="tab:green", lw=1, ls="--")
        ax.set_xlim(left, max(right, bound * 1.05))
    ax.set_xlabel(f"{latency} (lower is better)")
    ax.set_ylabel(f"{throughput} (higher is better)")
    ax.set_title(f"Pareto front: {title}" + (f"\nSLA {sla.describe()}" if sla else ""))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
