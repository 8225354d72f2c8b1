"""``study=recommend``: the CLI front door of ``mantile.recommend`` (conf/study/recommend.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
from rich import box
from rich.table import Table

from mantile.analysis import summary, tables
from mantile.engine import io
from mantile.planning import recommend
from mantile.specs import SpecError

KEYS = ("name", "description", "hardware", "serving", "dtype", "tp", "pp", "ep", "dp_attention", "disaggregated",
        "percentile", "max_devices", "top")
SHOWN = ("mode", "hardware_id", "serving", "dtype", "tp", "pp", "ep", "dp_attention", "replicas",
         "prefill_instances", "decode_instances", "decode_tp", "num_devices", "ttft_p99_ms", "tpot_p99_ms",
         "tokens_per_s_per_user", "usd_per_hour", "energy_j_per_token")


def run_recommend(study: dict[str, Any], model_id: str, cfg: Any, out_dir: Path, config_yaml: str) -> None:
    """Validate the study's keys and the load, search, print the rankings and write recommend.parquet."""
    unknown = sorted(set(study) - set(KEYS))
    if unknown:
        raise SpecError("study", unknown[0], study[unknown[0]], f"valid keys: {list(KEYS)}")
    sla = dict(cfg.get("sla") or {})
    for key, where in (("request_rate", "request_rate"), ("input_seq", "input_seq"), ("output_seq", "output_seq")):
        if cfg.get(key) is None or isinstance(cfg.get(key), (list, tuple)) or str(cfg.get(key)).startswith("["):
            raise SpecError("study=recommend", where, cfg.get(key), "one value (the target load and workload)")
    for key in ("ttft_ms", "tpot_ms"):
        if sla.get(key) is None:
            raise SpecError("study=recommend", f"sla.{key}", None, "a positive number (the SLA to meet)")
    args = {k: study[k] for k in KEYS[2:] if study.get(k) is not None}
    rec = recommend(model_id, int(cfg.input_seq), int(cfg.output_seq),
                    float(cfg.request_rate), sla["ttft_ms"], sla["tpot_ms"], **args)
    io.write_parquet(rec.deployments, out_dir / "recommend.parquet", config_yaml)
    print(report(rec, model_id))
    print(f"recommend: {summary.relative(out_dir / 'recommend.parquet')}")


def _shown(df: pl.DataFrame) -> list[str]:
    """SHOWN minus columns that say nothing here (all null, or one value across every deployment)."""
    return [c for c in SHOWN if c in df.columns and df[c].null_count() < df.height
            and (c not in ("pp", "ep", "dp_attention", "mode") or df[c].n_unique() > 1)]


#: The metrics of a deployment under short headers; every other shown column goes into its plan.
METRICS = {"num_devices": "GPUs", "ttft_p99_ms": "TTFT p99 ms", "tpot_p99_ms": "TPOT p99 ms",
           "tokens_per_s_per_user": "tok/s/user", "usd_per_hour": "$/hour", "energy_j_per_token": "J/token"}


def _plan(row: dict[str, Any], keys: list[str]) -> str:
    """'disaggregated nvidia_gb300_nvl72 sglang fp8 tp=1 P4 D1 dtp=4' from the row's shown plan keys."""
    label = {"replicas": "x", "prefill_instances": "P", "decode_instances": "D", "decode_tp": "dtp=",
             "tp": "tp=", "pp": "pp=", "ep": "ep=", "dp_attention": "dp_attention="}
    return " ".join(f"{label.get(k, '')}{row[k]}" for k in keys if row.get(k) is not None)


def _table(df: pl.DataFrame, shown: list[str]) -> str:
    """One ranking as a terminal table no wider than the terminal (cells fold)."""
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    keys = [c for c in shown if c not in METRICS]
    metrics = [c for c in METRICS if c in shown]
    t.add_column("deployment", overflow="fold")
    for c in metrics:
        t.add_column(METRICS[c], justify="right", overflow="fold")
    for row in df.head(20).iter_rows(named=True):
        t.add_row(_plan(row, keys), *("-" if row[c] is None else f"{row[c]:,.2f}" if isinstance(row[c], float)
                                      else str(row[c]) for c in metrics))
    return tables.render(t, tables.terminal_width())


def report(rec: Any, model_id: str) -> str:
    lines = [f"recommend {model_id}: {rec.deployments.height} deployments meet the SLA "
             f"({rec.searched.get('groups_verified', 0)} of {rec.searched.get('groups', 0)} hardware x engine groups "
             f"verified, {rec.seconds:.1f} s)"]
    shown = _shown(rec.deployments)
    for title, df in (("Best by GPUs", rec.by_gpus), ("Best by $/hour", rec.by_usd_per_hour),
                      ("Best by energy per token", rec.by_energy),
                      ("Pareto front: tokens/s per GPU vs tokens/s per user", rec.pareto)):
        if df.height:
            lines += ["", f"{title}:", _table(df, shown)]
    for title, cmds in rec.commands.items():
        lines += ["", f"Launch ({title}):", *[_shell_lines(c, tables.terminal_width()) for c in cmds]]
    return "\n".join(lines)


def _shell_lines(command: str, width: int) -> str:
    """``command`` indented, broken before a flag with a shell continuation where it would pass ``width``
    (still one command when pasted)."""
    out, line = [], "  "
    for word in command.split(" "):
        if word.startswith("--") and len(line) + 1 + len(word) + 2 > width and line.strip():
            out.append(line + " \\")
            line = "      "
        line = line + ("" if line.endswith(" ") else " ") + word
    return "\n".join([*out, line])


__all__ = ["run_recommend"]
