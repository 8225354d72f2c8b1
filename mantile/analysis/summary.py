"""Terminal summaries (Polars formatting): counts, the Pareto front, SLA ranking, capacity, reasons."""

from __future__ import annotations

import polars as pl

from mantile.analysis import sla as sla_mod
from mantile.analysis.capacity import PLAN
from mantile.analysis.sla import NO_SLA, Sla
from mantile.engine.runner import RunResult

SHOW = ("model_id", "hardware_id", "num_devices", "tp", "pp", "dp", "ep", "cp", "batch_size", "input_seq",
        "output_seq", "dtype", "ttft_ms", "tpot_ms", "e2e_latency_ms", "throughput_tokens_per_s_per_device",
        "tokens_per_s_per_user", "cost_usd_per_million_tokens", "memory_gb_per_device", "decode_bound")
SHOW_CAPACITY = (*PLAN, "weights_gb_per_device", "kv_cache_budget_gb_per_device", "max_batch_size",
                 "sla_max_batch_size", "batch_limit", "limited_by", "throughput_tokens_per_s_per_device",
                 "ttft_ms", "tpot_ms", "cost_usd_per_million_tokens")
IDENTITY_SHOWN = ["model_id", "hardware_id", "tp", "pp", "dp", "ep", "cp", "sp", "batch_size", "input_seq",
                  "output_seq", "dtype"]
QUIET_IF_ONE = ("pp", "dp", "ep", "cp", "sp", "embedding_tp", "num_devices")


def table(df: pl.DataFrame, columns: tuple[str, ...] = SHOW, max_rows: int = 40) -> str:
    cols = [c for c in columns if c in df.columns]
    # hide columns that say nothing: one value everywhere for parallel degrees, all-null columns
    cols = [c for c in cols if not (c in QUIET_IF_ONE and df[c].n_unique() == 1 and df[c][0] == 1)
            and df[c].null_count() < df.height and not _all_nan(df[c])
            and (c != "serving" or df[c].n_unique() > 1)
            and not _same(df, c, {"kv_dtype": "dtype", "embedding_tp": "tp"}.get(c))]
    shown = df.select(cols).with_columns(pl.col(pl.Float64).round(2))
    with pl.Config(tbl_rows=max_rows, tbl_cols=len(cols), tbl_width_chars=1000, tbl_hide_dataframe_shape=True,
                   tbl_hide_column_data_types=True, fmt_str_lengths=60, tbl_formatting="ASCII_MARKDOWN"):
        return str(shown)


def _all_nan(s: pl.Series) -> bool:
    return s.dtype.is_float() and bool(s.is_nan().fill_null(True).all())


def _same(df: pl.DataFrame, col: str, other: str | None) -> bool:
    """True when ``col`` repeats ``other`` in every row (kv_dtype = dtype, embedding_tp = tp)."""
    return other is not None and other in df.columns and bool(
        (df[col].cast(pl.String) == df[other].cast(pl.String)).all())


def describe(res: RunResult, title: str = "") -> str:
    c = res.counts
    lines = [f"{title}{res.n_points:,} points in {res.seconds:.2f} s "
             f"({res.n_points / max(res.seconds, 1e-9):,.0f} points/s): {c.get('valid', 0):,} valid, "
             f"{c.get('fits', 0):,} fit in memory"]
    if res.path:
        lines.append(f"results: {res.path}")
    return "\n".join(lines)


BREAKDOWN = ("model_id", "hardware_id", "tp", "pp", "dp", "cp", "batch_size", "prefill_attention_ms",
             "prefill_feedforward_ms", "prefill_norm_ms", "prefill_embedding_ms", "prefill_comm_ms",
             "prefill_comm_pct", "decode_attention_ms", "decode_feedforward_ms", "decode_norm_ms",
             "decode_embedding_ms", "decode_comm_ms", "decode_comm_pct")


def breakdown_text(df: pl.DataFrame, max_rows: int = 20) -> str:
    """Per-layer-type time of one prefill and one decode step (whole model, ms; each layer type
    includes its own collectives) and the communication share of TTFT and TPOT."""
    if df.height == 0 or "decode_comm_ms" not in df.columns:
        return ""
    shares = df.head(max_rows).with_columns(
        (100 * pl.col("prefill_comm_ms") / pl.col("ttft_ms")).alias("prefill_comm_pct"),
        (100 * pl.col("decode_comm_ms") / pl.col("tpot_ms")).alias("decode_comm_pct"))
    return ("Per-layer breakdown (ms per prefill / per decode step, whole model; *_comm_ms = all "
            "collectives, *_comm_pct = their share of TTFT / TPOT):\n" + table(shares, BREAKDOWN))


def pareto_text(front: pl.DataFrame, latency: str, throughput: str) -> str:
    if front.height == 0:
        return "Pareto front: empty (no point is both a valid plan and fits in memory; see the reasons)"
    head = f"Pareto front ({front.height} points): min {latency} vs max {throughput}"
    return head + "\n" + table(front) + "\n" + breakdown_text(front)


def plan_label(row: dict) -> str:
    """'tp=4 pp=2 dp=1 batch=64' (ep/cp shown when not 1)."""
    parts = [f"{k}={row[k]}" for k in ("tp", "pp", "dp") if k in row]
    parts += [f"{k}={row[k]}" for k in ("ep", "cp") if row.get(k, 1) != 1]
    return " ".join(parts + [f"batch={row['batch_size']}"])


def sla_text(lf: pl.LazyFrame, sla: Sla, top: int = 10) -> str:
    """Plans meeting the SLA ranked by throughput per device (and per dollar), and the closest miss."""
    if not sla:
        return ""
    ok, fitting = sla_mod.count_meeting(lf, sla)
    lines = [f"SLA {sla.describe()}: {ok:,} of {fitting:,} fitting points meet it"]
    if ok:
        best = sla_mod.meeting(lf, sla, top)
        lines += [f"Best {best.height} by throughput per device:", table(best)]
        per_usd = sla_mod.meeting(lf, sla, top, by=sla_mod.RANK_BY[1])
        same = per_usd.select(IDENTITY_SHOWN).equals(best.select(IDENTITY_SHOWN))
        if per_usd.height and same:
            lines.append("(ranked by throughput per dollar the order is the same: one price per device-hour)")
        elif per_usd.height:
            lines += [f"Best {per_usd.height} by throughput per dollar (prices: conf/hardware):",
                      table(per_usd, (*SHOW[:12], "throughput_tokens_per_s_per_usd_hour",
                                      "cost_usd_per_million_tokens", "ttft_ms", "tpot_ms",
                                      "throughput_tokens_per_s_per_device"))]
    miss = sla_mod.best_failing(lf, sla)
    if miss.height:
        row = miss.row(0, named=True)
        where = f"{row['model_id']} on {row['hardware_id']}, {plan_label(row)}"
        lines.append(f"Closest miss: {where}: "
                     f"{sla_mod.miss_text(row, sla)} "
                     f"({row['throughput_tokens_per_s_per_device']:.4g} tokens/s per device)")
    elif not fitting:
        lines.append("No point fits in memory, so none can meet the SLA.")
    return "\n".join(lines)


def capacity_text(capacity: pl.DataFrame, curves: pl.DataFrame | None = None, sla: Sla = NO_SLA) -> str:
    lines = [f"Batch capacity ({capacity.height} plans"
             + (f"; SLA {sla.describe()}" if sla else "; no SLA set: sla.ttft_ms / sla.tpot_ms / "
                "sla.tokens_per_s_per_user add one") + ")",
             table(capacity, SHOW_CAPACITY)]
    if curves is not None and curves.height:
        shown = [c for c in curves.columns if c != "meets_sla" or sla]
        lines += ["Throughput/latency curve up to each plan's capacity:",
                  table(curves, tuple(shown), max_rows=200)]
    return "\n".join(lines)


def invalid_text(df: pl.DataFrame | pl.LazyFrame | None, limit: int = 5) -> str:
    """The most common reasons points were invalid or did not fit ('does not fit' counted as one)."""
    if df is None:
        return ""
    lf = df.lazy()
    if "reason" not in lf.collect_schema().names():
        return ""
    kind = pl.when(pl.col("reason").str.starts_with("does not fit")).then(
        pl.lit("does not fit in memory (see memory_gb_per_device)")).otherwise(pl.col("reason"))
    top = (lf.filter(pl.col("reason").is_not_null()).group_by(kind.alias("reason")).len()
           .sort("len", descending=True).collect())
    if top.height == 0:
        return ""
    lines = [f"{int(top['len'].sum()):,} points invalid or not fitting; most common reasons:"]
    lines += [f"  {n:>8,} x {r}" for r, n in top.head(limit).iter_rows()]
    return "\n".join(lines)
