"""Terminal summaries: the Pareto table and the run's counts (Polars formatting)."""

from __future__ import annotations

import polars as pl

from mantile.engine.runner import RunResult

SHOW = ("model_id", "hardware_id", "num_devices", "tp", "pp", "dp", "cp", "batch_size", "input_seq", "output_seq",
        "dtype", "ttft_ms", "tpot_ms", "e2e_latency_ms", "throughput_tokens_per_s_per_device",
        "tokens_per_s_per_user", "memory_gb_per_device", "decode_bound")


def table(df: pl.DataFrame, columns: tuple[str, ...] = SHOW, max_rows: int = 40) -> str:
    cols = [c for c in columns if c in df.columns]
    # hide plan columns that are constant (1) everywhere, to keep the table narrow
    cols = [c for c in cols if c not in ("pp", "dp", "cp") or df[c].n_unique() > 1 or df[c][0] != 1]
    shown = df.select(cols).with_columns(pl.col(pl.Float64).round(2))
    with pl.Config(tbl_rows=max_rows, tbl_cols=len(cols), tbl_width_chars=250, tbl_hide_dataframe_shape=True,
                   tbl_hide_column_data_types=True, fmt_str_lengths=40, tbl_formatting="ASCII_MARKDOWN"):
        return str(shown)


def describe(res: RunResult, title: str = "") -> str:
    c = res.counts
    lines = [f"{title}{res.n_points:,} points in {res.seconds:.2f} s "
             f"({res.n_points / max(res.seconds, 1e-9):,.0f} points/s): {c.get('valid', 0):,} valid, "
             f"{c.get('fits', 0):,} fit in memory"]
    if res.path:
        lines.append(f"results: {res.path}")
    return "\n".join(lines)


def pareto_text(front: pl.DataFrame, latency: str, throughput: str) -> str:
    if front.height == 0:
        return "Pareto front: empty (no point fits in memory; see the 'reason' column)"
    head = f"Pareto front ({front.height} points): min {latency} vs max {throughput}"
    return head + "\n" + table(front)


def invalid_text(df: pl.DataFrame | None, limit: int = 5) -> str:
    """The most common reasons points were invalid or did not fit."""
    if df is None or "reason" not in df.columns:
        return ""
    bad = df.filter(pl.col("reason").is_not_null())
    if bad.height == 0:
        return ""
    top = bad.group_by("reason").len().sort("len", descending=True).head(limit)
    lines = [f"{bad.height:,} points invalid or not fitting; most common reasons:"]
    lines += [f"  {n:>8,} x {r}" for r, n in top.iter_rows()]
    return "\n".join(lines)
