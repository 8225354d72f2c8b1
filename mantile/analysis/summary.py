"""Terminal summaries: counts, the Pareto front, SLA ranking, capacity, reasons.

Tables come from ``analysis.tables`` (sized to the terminal, a plan column with every varying key);
each text here is printed once per run.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from mantile.analysis import sla as sla_mod
from mantile.analysis import tables
from mantile.analysis.sla import NO_SLA, Sla
from mantile.analysis.tables import DEFAULT_VIEW, PLAN_ORDER, View, plan_label
from mantile.engine.runner import RunResult

SHOW_CAPACITY = ("max_batch_size", "sla_max_batch_size", "batch_limit", "limited_by",
                 "kv_cache_budget_gb_per_device", "throughput_tokens_per_s_per_device", "ttft_ms", "tpot_ms")
SHOW_CAPACITY_WIDE = ("weights_gb_per_device", "kv_cache_budget_gb_per_device", "max_batch_size",
                      "sla_max_batch_size", "batch_limit", "limited_by", "throughput_tokens_per_s_per_device",
                      "tokens_per_s_per_user", "ttft_ms", "tpot_ms", "memory_gb_per_device",
                      "cost_usd_per_million_tokens")
SHOW_CURVE = ("batch_size", "ttft_ms", "tpot_ms", "throughput_tokens_per_s_per_device", "tokens_per_s_per_user",
              "memory_gb_per_device", "meets_sla")
IDENTITY_SHOWN = ["model_id", "hardware_id", "tp", "pp", "dp", "ep", "cp", "sp", "batch_size", "input_seq",
                  "output_seq", "dtype"]


def table(df: pl.DataFrame, columns: tuple[str, ...] | None = None, view: View = DEFAULT_VIEW,
          plan_keys: tuple[str, ...] = PLAN_ORDER) -> str:
    """A terminal table (``analysis.tables.table``): shared keys as the title, varying keys as the plan."""
    return tables.table(df, columns, view, plan_keys)


def relative(path: Path) -> Path:
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


def describe(res: RunResult, title: str = "") -> str:
    c = res.counts
    lines = [f"{title}{res.n_points:,} points in {res.seconds:.2f} s "
             f"({res.n_points / max(res.seconds, 1e-9):,.0f} points/s): {c.get('valid', 0):,} valid, "
             f"{c.get('fits', 0):,} fit in memory"]
    if res.path:
        lines.append(f"results: {relative(res.path)}")
    return tables.wrap("\n".join(lines))


BREAKDOWN = ("batch_size", "prefill_attention_ms", "prefill_feedforward_ms", "prefill_norm_ms",
             "prefill_embedding_ms", "prefill_comm_ms", "prefill_comm_pct", "decode_attention_ms",
             "decode_feedforward_ms", "decode_norm_ms", "decode_embedding_ms", "decode_comm_ms", "decode_comm_pct")


def breakdown_text(df: pl.DataFrame, view: View = DEFAULT_VIEW) -> str:
    """Per-layer-type time of one prefill and one decode step (whole model, ms; each layer type
    includes its own collectives) and the communication share of TTFT and TPOT."""
    if df.height == 0 or "decode_comm_ms" not in df.columns:
        return ""
    shares = df.with_columns(
        (100 * pl.col("prefill_comm_ms") / pl.col("ttft_ms")).alias("prefill_comm_pct"),
        (100 * pl.col("decode_comm_ms") / pl.col("tpot_ms")).alias("decode_comm_pct"))
    return tables.wrap("Per-layer breakdown (ms per prefill / per decode step, whole model; *_comm_ms = all "
                       "collectives, *_comm_pct = their share of TTFT / TPOT):", view.line_width()) + "\n" + \
        table(shares, BREAKDOWN, view)


BANDS = ("batch_size", "ttft_p10_ms", "ttft_ms", "ttft_p90_ms", "ttft_floor_ms", "tpot_p10_ms", "tpot_ms",
         "tpot_p90_ms", "tpot_floor_ms", "throughput_p10_tokens_per_s", "throughput_tokens_per_s",
         "throughput_p90_tokens_per_s", "throughput_ceiling_tokens_per_s")


def band_text(df: pl.DataFrame, view: View = DEFAULT_VIEW) -> str:
    """Each point's 80% error band and physics floor (ceiling for throughput), and what the bands rest on."""
    if df.height == 0 or "ttft_floor_ms" not in df.columns:
        return ""
    basis = df["band_basis"].drop_nulls().unique(maintain_order=True).to_list() if "band_basis" in df.columns else []
    head = tables.wrap("Error band (80%: p10-p90 of the model's out-of-sample error in this regime) and physics "
                       "floor (datasheet peaks, no overhead: no measurement can beat it):", view.line_width())
    notes = "\n".join(tables.wrap(f"band basis: {b}", view.line_width()) for b in basis[:3])
    return head + "\n" + table(df, BANDS, view) + ("\n" + notes if notes else "")


def pareto_text(front: pl.DataFrame, latency: str, throughput: str, view: View = DEFAULT_VIEW) -> str:
    if front.height == 0:
        return "Pareto front: empty (no point is both a valid plan and fits in memory; see the reasons)"
    head = tables.wrap(f"Pareto front ({front.height} points): min {latency} vs max {throughput}",
                       view.line_width())
    text = head + "\n" + table(front, None, view) + "\n" + band_text(front, view)
    if view.wide:
        return text + "\n" + breakdown_text(front, view)
    return text + "\n(per-layer breakdown and more columns: summary.wide=true; any columns: summary.columns=[...])"


def sla_text(lf: pl.LazyFrame, sla: Sla, top: int = 10, view: View = DEFAULT_VIEW) -> str:
    """Plans meeting the SLA ranked by throughput per device (and per dollar), and the closest miss."""
    if not sla:
        return ""
    ok, fitting = sla_mod.count_meeting(lf, sla)
    lines = [f"SLA {sla.describe()}: {ok:,} of {fitting:,} fitting points meet it"]
    if ok:
        best = sla_mod.meeting(lf, sla, top)
        lines += [f"Best {best.height} by throughput per device:", table(best, None, view)]
        per_usd = sla_mod.meeting(lf, sla, top, by=sla_mod.RANK_BY[1])
        same = per_usd.select(IDENTITY_SHOWN).equals(best.select(IDENTITY_SHOWN))
        if per_usd.height and same:
            lines.append("(ranked by throughput per dollar the order is the same: one price per device-hour)")
        elif per_usd.height:
            lines += [f"Best {per_usd.height} by throughput per dollar (prices: conf/hardware):",
                      table(per_usd, ("batch_size", "cost_usd_per_million_tokens", "ttft_ms", "tpot_ms",
                                      "throughput_tokens_per_s_per_device"), view)]
    miss = sla_mod.best_failing(lf, sla)
    if miss.height:
        row = miss.row(0, named=True)
        where = f"{row['model_id']} on {row['hardware_id']}, {plan_label(row)}"
        lines.append(f"Closest miss: {where}: "
                     f"{sla_mod.miss_text(row, sla)} "
                     f"({row['throughput_tokens_per_s_per_device']:.4g} tokens/s per device)")
    elif not fitting:
        lines.append("No point fits in memory, so none can meet the SLA.")
    return tables.wrap("\n".join(lines), view.line_width())


def capacity_text(capacity: pl.DataFrame, curves: pl.DataFrame | None = None, sla: Sla = NO_SLA,
                  view: View = DEFAULT_VIEW) -> str:
    """The capacity table (one row per plan) and each plan's throughput/latency curve."""
    head = (f"Batch capacity ({capacity.height} plans"
            + (f"; SLA {sla.describe()}" if sla else "; no SLA set: sla.ttft_ms / sla.tpot_ms / "
               "sla.tokens_per_s_per_user add one") + ")")
    cols = view.columns or (SHOW_CAPACITY_WIDE if view.wide else SHOW_CAPACITY)
    lines = [tables.wrap(head, view.line_width()), table(capacity, cols, view)]
    if curves is not None and curves.height:
        shown = tuple(c for c in SHOW_CURVE if c != "meets_sla" or sla)
        lines += ["Throughput/latency curve up to each plan's capacity:",
                  table(curves, shown, View(view.columns, view.wide, max(view.max_rows, 200), view.width))]
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
    return tables.wrap("\n".join(lines))
