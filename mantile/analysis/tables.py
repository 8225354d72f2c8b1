"""Terminal tables sized to the terminal (``rich``): a plan column, a few key metrics, every varying key.

A results table has ~60 columns; a terminal has ~120 characters. By default a table shows

- a title with the keys that are the same in every row ("llama_3.1_8b on nvidia_h100_80gb, 2048 in,
  256 out, bf16"),
- a ``plan`` column with every identity key that varies between rows (tp, pp, dp, dtype, input
  length, model, ...), so no two rows look alike unless they are the same point,
- the key metrics (``KEY_COLUMNS``) under short headers with units.

``summary.columns=[...]`` replaces the metrics, ``summary.wide=true`` shows the long list
(``WIDE_COLUMNS``) and the per-layer breakdown. Tables never get wider than the terminal
(``COLUMNS``, else the terminal's size, else 120 characters): rich folds cells instead.
"""

from __future__ import annotations

import io
import shutil
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl
from rich import box
from rich.console import Console
from rich.table import Table

from mantile.specs import SpecError

#: identity keys in the order the plan column names them
PLAN_ORDER = ("model_id", "hardware_id", "serving", "tp", "pp", "dp", "ep", "cp", "sp", "embedding_tp", "dtype",
              "kv_dtype", "input_seq", "output_seq", "spec_method", "spec_num_tokens", "spec_acceptance",
              "prefix_cache_hit_rate", "num_requests", "output_dist")
#: parallel degrees shown only where they vary or are not 1
QUIET_IF_ONE = ("pp", "dp", "ep", "cp", "sp")
#: keys shown only where they vary or differ from their default (no speculation, no prefix cache)
QUIET_DEFAULT: dict[str, Any] = {"spec_method": "none", "spec_num_tokens": 0, "spec_acceptance": 0.0,
                                 "prefix_cache_hit_rate": 0.0, "num_requests": 0, "output_dist": "fixed"}
#: column -> short header (units in the header)
HEADERS: dict[str, str] = {
    "plan": "plan", "batch_size": "batch", "ttft_ms": "TTFT ms", "tpot_ms": "TPOT ms",
    "e2e_latency_ms": "e2e ms", "throughput_tokens_per_s_per_device": "tok/s/GPU",
    "throughput_tokens_per_s": "tok/s", "tokens_per_s_per_user": "tok/s/user",
    "memory_gb_per_device": "mem GB", "fits": "fits", "cost_usd_per_million_tokens": "$/Mtok",
    "decode_bound": "decode bound", "weights_gb_per_device": "weights GB",
    "kv_cache_budget_gb_per_device": "KV budget GB", "max_batch_size": "max batch (memory)",
    "sla_max_batch_size": "max batch (SLA)", "batch_limit": "batch limit", "limited_by": "limited by",
    "num_devices": "GPUs", "meets_sla": "meets SLA", "concurrency": "clients", "request_rate": "req/s",
    "running_batch": "running", "ttft_p99_ms": "TTFT p99", "tpot_p99_ms": "TPOT p99",
    "ttft_p10_ms": "TTFT p10", "ttft_p90_ms": "TTFT p90", "ttft_floor_ms": "TTFT floor",
    "tpot_p10_ms": "TPOT p10", "tpot_p90_ms": "TPOT p90", "tpot_floor_ms": "TPOT floor",
    "throughput_p10_tokens_per_s": "tok/s p10", "throughput_p90_tokens_per_s": "tok/s p90",
    "throughput_ceiling_tokens_per_s": "tok/s ceiling",
}
KEY_COLUMNS = ("batch_size", "ttft_ms", "tpot_ms", "throughput_tokens_per_s_per_device", "tokens_per_s_per_user",
               "memory_gb_per_device", "fits")
WIDE_COLUMNS = ("num_devices", "batch_size", "ttft_ms", "tpot_ms", "e2e_latency_ms",
                "throughput_tokens_per_s_per_device", "throughput_tokens_per_s", "tokens_per_s_per_user",
                "cost_usd_per_million_tokens", "memory_gb_per_device", "fits", "decode_bound")
DEFAULT_WIDTH = 120
PLAN_LABEL_KEYS = ("tp", "pp", "dp", "ep", "cp")


def terminal_width() -> int:
    """``COLUMNS`` if set, else the terminal's width, else 120."""
    return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns


@dataclass(frozen=True)
class View:
    """``summary.*`` in the config: which columns the terminal tables show."""

    columns: tuple[str, ...] | None = None  # replaces KEY_COLUMNS (the plan column always comes first)
    wide: bool = False  # WIDE_COLUMNS and the per-layer breakdown
    max_rows: int = 40  # rows per table; the files hold them all
    width: int | None = None  # None: terminal_width()

    @classmethod
    def from_config(cls, raw: Mapping[str, Any] | None) -> View:
        raw = dict(raw or {})
        unknown = sorted(set(raw) - {"columns", "wide", "max_rows"})
        if unknown:
            raise SpecError("summary", unknown[0], raw[unknown[0]], "valid keys: columns, wide, max_rows")
        columns = raw.get("columns")
        if columns is not None and (isinstance(columns, str) or not all(isinstance(c, str) for c in columns)):
            raise SpecError("summary", "columns", columns, "a list of results columns (docs/columns.md)")
        if not isinstance(raw.get("wide", False), bool):
            raise SpecError("summary", "wide", raw["wide"], "true or false")
        max_rows = raw.get("max_rows", cls.max_rows)
        if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
            raise SpecError("summary", "max_rows", max_rows, "a positive integer")
        return cls(tuple(columns) if columns is not None else None, bool(raw.get("wide", False)), max_rows)

    def metrics(self) -> tuple[str, ...]:
        return self.columns if self.columns is not None else WIDE_COLUMNS if self.wide else KEY_COLUMNS

    def line_width(self) -> int:
        return self.width or terminal_width()


DEFAULT_VIEW = View()


def varying(df: pl.DataFrame, keys: Sequence[str] = PLAN_ORDER) -> tuple[list[str], list[str]]:
    """(identity keys that vary between rows, keys with one value); redundant ones dropped."""
    present = [k for k in keys if k in df.columns and df[k].null_count() < df.height]
    vary = [k for k in present if df[k].n_unique() > 1]
    same = [k for k in present if k not in vary]
    vary = [k for k in vary if not _repeats(df, k)]
    same = [k for k in same if not _repeats(df, k) and not (k in QUIET_IF_ONE and df[k][0] == 1)
            and not (k in QUIET_DEFAULT and df[k].cast(pl.String)[0] == str(QUIET_DEFAULT[k]))]
    return vary, same


def _repeats(df: pl.DataFrame, col: str) -> bool:
    """kv_dtype equal to dtype and embedding_tp equal to tp in every row say nothing new."""
    other = {"kv_dtype": "dtype", "embedding_tp": "tp"}.get(col)
    return other is not None and other in df.columns and bool(
        (df[col].cast(pl.String) == df[other].cast(pl.String)).all())


def _fmt_key(key: str, value: Any) -> str:
    if key in ("model_id", "hardware_id", "serving", "dtype"):
        return str(value)
    short = {"input_seq": "in", "output_seq": "out", "kv_dtype": "kv",
             "embedding_tp": "emb_tp", "spec_method": "spec", "spec_num_tokens": "k", "spec_acceptance": "acc",
             "prefix_cache_hit_rate": "prefix_hit", "num_requests": "requests", "output_dist": "outputs"}
    return f"{short.get(key, key)}={value}"


def plan_column(df: pl.DataFrame, keys: Sequence[str]) -> list[str]:
    """'tp=4 pp=2 fp8 in=8192' per row: every key of ``keys`` (the varying ones)."""
    cols = [k for k in PLAN_ORDER if k in keys]
    return [" ".join(_fmt_key(k, row[k]) for k in cols) for row in df.select(cols).iter_rows(named=True)]


def plan_label(row: Mapping[str, Any], extra: Sequence[str] = ()) -> str:
    """'tp=4 pp=2 batch=64' for one row (degrees other than tp shown when not 1), plus ``extra`` columns."""
    parts = [f"tp={row['tp']}"] if "tp" in row else []
    parts += [f"{k}={row[k]}" for k in PLAN_LABEL_KEYS[1:] if row.get(k, 1) != 1]
    parts += [str(row[k]) for k in extra if k in row]
    return " ".join([*parts, f"batch={row['batch_size']}"])


def title_of(df: pl.DataFrame, same: Sequence[str]) -> str:
    """'llama_3.1_8b on nvidia_h100_80gb, tp=8, bf16, in=2048, out=256': the keys every row shares."""
    if df.height == 0:
        return ""
    row = df.row(0, named=True)
    head = " on ".join(str(row[k]) for k in ("model_id", "hardware_id") if k in same)
    rest = [_fmt_key(k, row[k]) for k in PLAN_ORDER if k in same and k not in ("model_id", "hardware_id")]
    return ", ".join(p for p in (head, *rest) if p)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:
            return "-"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, int):
        return str(value)
    return str(value)


def load_column(df: pl.DataFrame) -> str:
    """The column that holds the load: batch_size, or concurrency / request_rate when the run used them."""
    for key in ("concurrency", "request_rate"):
        if key in df.columns and df[key].null_count() < df.height:
            return key
    return "batch_size"


def table(df: pl.DataFrame, columns: Sequence[str] | None = None, view: View = DEFAULT_VIEW,
          plan_keys: Sequence[str] = PLAN_ORDER, title: str | None = None) -> str:
    """Render ``df`` as a terminal table: a title (shared keys), the plan column (varying keys),
    then ``columns`` (default: the view's metrics); at most ``view.max_rows`` rows."""
    vary, same = varying(df, plan_keys)
    load = load_column(df)
    wanted = [load if c == "batch_size" else c for c in (columns or view.metrics())]
    metrics = list(dict.fromkeys(c for c in wanted if c in df.columns and c not in vary))
    shown = df.head(view.max_rows)
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    if vary:
        t.add_column("plan", overflow="fold")
    for c in metrics:
        t.add_column(HEADERS.get(c, c), justify="left" if shown[c].dtype == pl.String else "right",
                     overflow="fold")
    plans = plan_column(shown, vary) if vary else [""] * shown.height
    for plan, row in zip(plans, shown.select(metrics).iter_rows(), strict=True):
        t.add_row(*([plan] if vary else []), *(_cell(v) for v in row))
    head = title if title is not None else title_of(df, same)
    text = render(t, view.line_width())
    more = f"\n  ... {df.height - view.max_rows:,} more rows in the Parquet file" if df.height > view.max_rows else ""
    return (wrap(head, view.line_width()) + "\n" if head else "") + text + more


def render(renderable: Any, width: int) -> str:
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None, force_terminal=False, legacy_windows=False,
            soft_wrap=False).print(renderable)
    return "\n".join(line.rstrip() for line in buf.getvalue().rstrip("\n").splitlines())


def wrap(text: str, width: int | None = None) -> str:
    """Wrap every line of ``text`` to the terminal width (continuation lines indented)."""
    width = width or terminal_width()
    out = []
    for line in text.splitlines():
        out.append(line if len(line) <= width else textwrap.fill(
            line, width, subsequent_indent="  ", break_long_words=True, break_on_hyphens=False))
    return "\n".join(out)
