"""Pareto charts (matplotlib, Agg backend: no display needed): one PNG per front group, two panels.

- Left, the standard chart of inference serving: tokens/s per GPU (throughput per device) against
  tokens/s per user (the decode speed each user sees); the top-right corner is best.
- Right, the latency view: time to first token against time per output token; the bottom-left
  corner is best.

Colours and the legend name the series: the hardware system, plus the model, dtype, serving
profile or workload where those vary within the chart. Every fitting point is drawn small (a
sample of at most ``MAX_BACKGROUND_POINTS``), the Pareto front of each series as a line with
markers; points that meet every SLA constraint are ringed. The SLA region (where every constraint
that the panel's axes can show holds) is shaded: on the left, tokens/s per user at least
max(sla.tokens_per_s_per_user, 1000 / sla.tpot_ms); on the right, TTFT and TPOT both under their
bounds. Front points are labelled by plan only where the label would not overlap another.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from mantile.analysis.sla import NO_SLA, Sla
from mantile.analysis.tables import plan_label

MAX_BACKGROUND_POINTS = 20_000
MAX_LABELS = 24
LABEL_SPACING_PX = (70, 14)  # a label is skipped when another is this close (x, y pixels)
SERIES_KEYS = ("hardware_id", "model_id", "dtype", "serving", "input_seq", "output_seq")
AXES = {  # column -> axis title (words, units)
    "throughput_tokens_per_s_per_device": "Throughput per GPU (tokens/s, all users)",
    "tokens_per_s_per_user": "Decode speed per user (tokens/s)",
    "ttft_ms": "Time to first token (ms)",
    "tpot_ms": "Time per output token (ms)",
    "e2e_latency_ms": "End-to-end latency (ms)",
}


def _sample(lf: pl.LazyFrame, columns: list[str]) -> pl.DataFrame:
    n = lf.select(pl.len()).collect().item()
    step = max(1, n // MAX_BACKGROUND_POINTS)
    return lf.select(columns).gather_every(step).collect() if step > 1 else lf.select(columns).collect()


def _name(key: Sequence[Any]) -> str:
    return "_".join(re.sub(r"[^A-Za-z0-9._-]+", "-", str(k)) for k in key)


def file_keys(front: pl.DataFrame, by: Sequence[str]) -> list[str]:
    """Group columns named in the file name: model and system always, the others where they vary."""
    return [c for c in by if c in ("model_id", "hardware_id") or front[c].n_unique() > 1]


def plot_fronts(lf: pl.LazyFrame, front: pl.DataFrame, out_dir: Path, latency: str, throughput: str,
                by: Sequence[str], sla: Sla = NO_SLA) -> list[Path]:
    """Write ``pareto_<group>.png`` (``pareto.png`` when ``by`` is empty) next to pareto.parquet."""
    by = [c for c in by if c in front.columns]
    names = lf.collect_schema().names()
    metrics = [c for c in dict.fromkeys((latency, throughput, "tokens_per_s_per_user", "ttft_ms", "tpot_ms"))
               if c in names]
    series = [c for c in SERIES_KEYS if c in names]
    fitting = lf.filter(pl.col("fits") & pl.all_horizontal([pl.col(c).is_finite() for c in metrics]))
    meets = sla.meets() if sla else pl.lit(False)
    background = _sample(fitting.with_columns(meets.alias("_meets")), list(dict.fromkeys([*by, *series, *metrics,
                                                                                          "_meets"])))
    keys = file_keys(front, by)
    paths = []
    groups = front.partition_by(keys, as_dict=True, maintain_order=True) if keys else {(): front}
    for key, group in groups.items():
        pts = background
        for col, value in zip(keys, key, strict=True):
            pts = pts.filter(pl.col(col).cast(pl.String) == str(value))
        name = _name(key)
        path = Path(out_dir) / (f"pareto_{name}.png" if name else "pareto.png")
        title = " on ".join(str(k) for k in key[:2]) if key else "all models and systems"
        _draw(pts, group.with_columns(meets.alias("_meets")), path, throughput, sla, title)
        paths.append(path)
    return paths


def _series(df: pl.DataFrame, keys: Sequence[str]) -> pl.Series:
    """'nvidia_h100_80gb, fp8' per row: the series keys that vary in ``df`` (at least the system)."""
    cols = [k for k in keys if k in df.columns and (k == "hardware_id" or df[k].n_unique() > 1)]
    short = {"input_seq": "in=", "output_seq": "out="}
    return df.select(pl.concat_str([pl.lit(short.get(c, "")) + pl.col(c).cast(pl.String) for c in cols],
                                   separator=", ").alias("_series"))["_series"]


def _draw(pts: pl.DataFrame, front: pl.DataFrame, path: Path, throughput: str, sla: Sla, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series_keys = [k for k in SERIES_KEYS if k in pts.columns]
    both = pl.concat([pts.select(series_keys), front.select(series_keys)], how="vertical_relaxed")
    labels = _series(both, series_keys)
    pts, front = pts.with_columns(labels[:pts.height]), front.with_columns(labels[pts.height:])
    names = list(dict.fromkeys(labels.to_list()))
    colors = {n: plt.get_cmap("tab10")(i % 10) for i, n in enumerate(names)}
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6), dpi=110)
    panels = ((left, "tokens_per_s_per_user", throughput), (right, "ttft_ms", "tpot_ms"))
    for ax, x, y in panels:
        for n in names:
            p = pts.filter(pl.col("_series") == n)
            ax.scatter(p[x], p[y], s=6, color=colors[n], alpha=0.25, rasterized=True)
            f = front.filter(pl.col("_series") == n).sort(x)
            what = f"{f.height} on the front" if f.height else "none on the front"
            ax.plot(f[x], f[y], "-o", color=colors[n], ms=5, lw=1.5, label=f"{n} ({p.height:,} points, {what})")
            good = f.filter(pl.col("_meets"))
            if good.height:
                ax.scatter(good[x], good[y], s=110, facecolors="none", edgecolors="black", lw=1.2, zorder=3)
        _log_if_wide(ax, pts, x, y)
        ax.set_xlabel(AXES.get(x, x))
        ax.set_ylabel(AXES.get(y, y))
        ax.grid(True, alpha=0.3)
    _shade_sla(left, right, sla)
    if sla and front["_meets"].any():
        left.scatter([], [], s=110, facecolors="none", edgecolors="black", lw=1.2, label="meets every SLA constraint")
    fig.canvas.draw()  # fix the axis limits before placing labels in pixels
    vary = [k for k in ("dtype",) if front[k].n_unique() > 1] if "dtype" in front.columns else []
    for ax, x, y in panels:
        _label(ax, front, x, y, vary, colors)
    left.set_title("Throughput per GPU vs decode speed per user (top right is best)", fontsize=10)
    right.set_title("Latency: time to first token vs per output token (bottom left is best)", fontsize=10)
    left.legend(loc="best", fontsize=8)
    fig.suptitle(f"Pareto front: {title}" + (f"    SLA: {sla.describe()}" if sla else ""), fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)


def _log_if_wide(ax: Any, pts: pl.DataFrame, x: str, y: str) -> None:
    for col, set_scale in ((x, ax.set_xscale), (y, ax.set_yscale)):
        lo, hi = pts[col].min(), pts[col].max()
        if isinstance(lo, float) and isinstance(hi, float) and lo > 0 and hi / lo > 50:
            set_scale("log")


def _shade_sla(left: Any, right: Any, sla: Sla) -> None:
    """Shade where every constraint the panel can show holds."""
    bounds = sla.bounds
    per_user = [bounds[k] for k in ("tokens_per_s_per_user",) if k in bounds]
    per_user += [1000.0 / bounds["tpot_ms"]] if "tpot_ms" in bounds else []
    if per_user:
        lo, hi = left.get_xlim()
        left.axvspan(max(per_user), max(hi, max(per_user) * 1.05), color="tab:green", alpha=0.08,
                     label="SLA region (decode speed)")
        left.set_xlim(lo, max(hi, max(per_user) * 1.05))
    tpot = sla.latency_bound_ms("tpot_ms")
    ttft = bounds.get("ttft_ms")
    if tpot is None and ttft is None:
        return
    (x0, x1), (y0, y1) = right.get_xlim(), right.get_ylim()
    xr, yr = (ttft if ttft is not None else x1), (tpot if tpot is not None else y1)
    right.fill_between([min(x0, xr), xr], min(y0, yr), yr, color="tab:green", alpha=0.08, label="SLA region")
    right.set_xlim(x0, max(x1, xr * 1.05))
    right.set_ylim(y0, max(y1, yr * 1.05))
    right.legend(loc="best", fontsize=8)


def _label(ax: Any, front: pl.DataFrame, x: str, y: str, extra: Sequence[str], colors: dict[str, Any]) -> None:
    """Plan labels on front points, skipping any that would overlap one already placed."""
    placed: list[tuple[float, float]] = []
    dx, dy = LABEL_SPACING_PX
    for row in front.sort(x).iter_rows(named=True):
        px, py = ax.transData.transform((row[x], row[y]))
        if len(placed) >= MAX_LABELS or any(abs(px - qx) < dx and abs(py - qy) < dy for qx, qy in placed):
            continue
        placed.append((px, py))
        ax.annotate(plan_label(row, extra), (row[x], row[y]), textcoords="offset points", xytext=(5, 4),
                    fontsize=7, color=colors[row["_series"]])
