"""Disaggregated runs of the CLI: any ``disagg.*`` key (conf/config.yaml) makes the run P prefill and D
decode instances (``mantile.estimate_disagg``) instead of one aggregated deployment.

    python -m mantile model=llama_3.3_70b hardware=nvidia_h100_80gb disagg.prefill.tp=2 \\
        disagg.prefill.instances=2 disagg.decode.tp=4 input_seq=2048 output_seq=256 concurrency=64

A side's keys (``disagg.prefill.<key>``, ``disagg.decode.<key>``) are ``engine.disagg.SIDE_KEYS``;
``hardware`` and ``serving`` default to the run's groups, ``tp pp ep dp_attention dtype kv_dtype`` to the
run's top-level keys (one value each), ``batch_size`` (prompts per prefill pass) and ``instances`` to 1.
The load is ``concurrency`` or ``request_rate`` (the workload's ``batch_size`` does not apply).
``disagg.ratio=auto`` chooses the instances (``analysis.disagg_ratio``) for ``request_rate`` or within
``disagg.max_devices``. A list on a side key, ``disagg.max_devices``, ``input_seq``, ``output_seq``,
``concurrency`` or ``request_rate`` is crossed into a grid inside the run (one ``estimate_disagg`` per
point, at most ``MAX_POINTS``); ``-m key=a,b`` sweeps Hydra jobs, merged at the end (``summarize``).
Every point's keys are checked before the first is evaluated; results.parquet and pareto.parquet are
written at the end, atomically.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl
from rich import box
from rich.table import Table

from mantile.analysis import summary, tables
from mantile.analysis.pareto import pareto_front
from mantile.disaggregated import RATIOS, estimate_disagg
from mantile.engine import io
from mantile.engine.disagg import SIDE_KEYS, check_side_key
from mantile.engine.spec import check_axis
from mantile.specs import SpecError

SIDES = ("prefill", "decode")
SECTION_KEYS = (*SIDES, "ratio", "max_devices")
#: top-level keys a side takes when its own is not given (one value each in a disaggregated run)
INHERITED = ("tp", "pp", "ep", "dp_attention", "dtype", "kv_dtype")
LOADS = ("concurrency", "request_rate")
#: top-level keys that may be lists, crossed with the disagg keys (num_requests: a finite run, under concurrency)
GRID_KEYS = ("input_seq", "output_seq", *LOADS, "num_requests")
MAX_POINTS = 10_000  # one estimate_disagg each, ~10-50 ms
#: columns that tell two rows apart (a re-run job's rows replace its old ones in the merge)
IDENTITY = ("model_id", "input_seq", "output_seq", *LOADS, "num_requests",
            *(f"disagg.{s}.{k}" for s in SIDES for k in SIDE_KEYS),
            "disagg.ratio", "disagg.max_devices")
PARETO_BY = ("model_id", "input_seq", "output_seq")


def _plain(v: Any) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v


def section(cfg: Any) -> dict[str, Any]:
    """``disagg`` of the config as plain values (checked: only ``SECTION_KEYS``, sides ``SIDE_KEYS``)."""
    raw = _plain(cfg.get("disagg")) if hasattr(cfg, "get") else None
    raw = dict(raw or {})
    for k, v in raw.items():
        if k not in SECTION_KEYS:
            raise SpecError("disagg", k, v, f"valid keys: {', '.join(SECTION_KEYS)}")
        if k in SIDES:
            for sk, sv in dict(v or {}).items():
                if sk not in SIDE_KEYS:
                    raise SpecError("disagg", f"{k}.{sk}", sv, f"valid keys of disagg.{k}: {', '.join(SIDE_KEYS)}")
    return raw


def requested(cfg: Any) -> bool:
    """Whether any ``disagg.*`` key has a value (the run is then disaggregated)."""
    raw = section(cfg)
    sides = [v for s in SIDES for v in dict(raw.get(s) or {}).values()]
    return any(v is not None for v in (*sides, raw.get("ratio"), raw.get("max_devices")))


def _listed(v: Any) -> list[Any]:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def check_value(key: str, value: Any) -> None:
    """One value of a ``disagg.*`` key (``disagg.prefill.tp``, ``disagg.ratio``, ...); SpecError naming it."""
    parts = key.split(".")
    if parts[1:2] == ["ratio"] and value not in RATIOS:
        raise SpecError("disagg", key, value, "auto (choose the instances), or null (as given)")
    if parts[1:2] == ["max_devices"] and value is not None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SpecError("disagg", key, value, "a positive integer (devices of both sides, for disagg.ratio=auto)")
    if len(parts) == 3 and value is not None:
        with renamed():
            check_side_key(parts[1], parts[2], value)


class renamed:
    """Re-raise estimate_disagg's SpecErrors (``prefill.tp``, ``ratio``) under the CLI's keys
    (``disagg.prefill.tp``, ``disagg.ratio``)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, e: BaseException | None, tb: Any) -> None:
        if isinstance(e, SpecError):
            field = e.field if not e.field.startswith(("prefill", "decode", "ratio", "max_devices")) \
                else f"disagg.{e.field}"
            raise SpecError("disagg", field, e.value, e.allowed) from None


#: run keys a disaggregated run does not model, and the value that means "off"
NOT_MODELLED = {"dp": 1, "cp": 1, "sp": 1, "embedding_tp": None, "prefix_cache_hit_rate": 0.0,
                "redundant_experts": 0, "expert_imbalance": 1.0, "study": None}


def _not_modelled(cfg: Any) -> None:
    """A key the disaggregated model would ignore is an error, not a silent no-op."""
    for key, off in NOT_MODELLED.items():
        value = _plain(cfg.get(key))
        if key == "study" and value is not None:
            value = value.get("name")
        if value is not None and value != off:
            raise SpecError("disagg", key, value, f"{off} in a disaggregated run (estimate_disagg does not model "
                            f"{key}); drop it or the disagg.* keys")
    method = (_plain(cfg.get("spec")) or {}).get("method", "none")
    if method != "none":
        raise SpecError("disagg", "spec.method", method, "none in a disaggregated run (speculative decoding is not "
                        "modelled on the decode side)")


def points(cfg: Any, choices: Mapping[str, str]) -> list[dict[str, Any]]:
    """Every point of the run: ``estimate_disagg``'s keyword arguments (checked, before any work)."""
    raw = section(cfg)
    _not_modelled(cfg)
    axes: dict[str, list[Any]] = {}
    for side in SIDES:
        given = dict(raw.get(side) or {})
        defaults = {"hardware": choices["hardware"], "serving": choices.get("serving", "vllm")}
        for k in INHERITED:
            top = _plain(cfg.get(k))
            if isinstance(top, (list, tuple)):
                raise SpecError("disagg", k, top, f"one value in a disaggregated run (both sides take it); list "
                                f"disagg.prefill.{k} or disagg.decode.{k} instead")
            if top is not None:
                defaults[k] = top
        for k in SIDE_KEYS:
            v = given.get(k)
            values = _listed(v) if v is not None else [defaults.get(k)]
            for x in values:
                check_value(f"disagg.{side}.{k}", x)
            axes[f"{side}.{k}"] = values
    for k in ("ratio", "max_devices"):
        axes[k] = _listed(raw.get(k))
        for x in axes[k]:
            check_value(f"disagg.{k}", x)
    for k in GRID_KEYS:
        axes[k] = _listed(_plain(cfg.get(k)))
        for x in axes[k]:
            if x is not None:
                check_axis(k, x)
    if any(None in axes[k] for k in ("input_seq", "output_seq")):
        raise SpecError("disagg", "input_seq", axes["input_seq"], "prompt and output lengths (input_seq, output_seq)")
    if (axes["concurrency"] == [None]) == (axes["request_rate"] == [None]):
        load = None if axes["concurrency"] == [None] else axes["concurrency"]
        raise SpecError("disagg", "concurrency", load, "exactly one load in a disaggregated run: concurrency=N "
                        "(clients in a closed loop) or request_rate=R (requests/s)")
    n = 1
    for v in axes.values():
        n *= len(v)
    if n > MAX_POINTS:
        longest = max(axes, key=lambda k: len(axes[k]))
        raise SpecError("disagg", longest, f"{len(axes[longest])} values", f"a grid of at most {MAX_POINTS:,} "
                        f"points in one disaggregated run; this one has {n:,}")
    out = []
    for combo in itertools.product(*axes.values()):
        point = dict(zip(axes, combo, strict=True))
        args: dict[str, Any] = {k: point[k] for k in (*GRID_KEYS, "ratio", "max_devices")}
        for side in SIDES:
            args[side] = {k: point[f"{side}.{k}"] for k in SIDE_KEYS if point[f"{side}.{k}"] is not None}
        out.append(args)
    return out


def evaluate(cfg: Any, choices: Mapping[str, str]) -> pl.DataFrame:
    """The run's rows (``estimate_disagg`` per point)."""
    from mantile.specs.catalog import model_from_dict

    model_id = choices["model"]
    model = model_from_dict(cfg.model, f"conf/model/{model_id}.yaml")
    rows = []
    for args in points(cfg, choices):
        with renamed():
            row = estimate_disagg(model, **args)
        row["model_id"] = model_id
        rows.append(row)
    return pl.DataFrame(rows, infer_schema_length=None)


def front(df: pl.DataFrame) -> pl.DataFrame:
    """Pareto front of TPOT against tokens/s per device, per model and workload."""
    return pareto_front(df, "tpot_ms", "throughput_tokens_per_s_per_device", [c for c in PARETO_BY if c in df.columns])


def run_disagg(cfg: Any, choices: Mapping[str, str], out_dir: Path, config_yaml: str, multirun: bool) -> pl.DataFrame:
    """Evaluate, write results.parquet and pareto.parquet, print the summary."""
    df = evaluate(cfg, choices)
    io.write_parquet(df, out_dir / "results.parquet", config_yaml)
    io.write_parquet(front(df), out_dir / "pareto.parquet", config_yaml)
    print(describe(df))
    print(f"results: {summary.relative(out_dir / 'results.parquet')}")
    return df


def merge(files: list[Path], root: Path, config_yaml: str, quiet: bool = False) -> pl.DataFrame:
    """A multirun's disaggregated rows (later jobs win), written as DIR/results.parquet and pareto.parquet."""
    lf = pl.concat([pl.scan_parquet(f) for f in files], how="diagonal_relaxed")
    keys = [c for c in IDENTITY if c in lf.collect_schema().names()]
    df = lf.unique(subset=keys, keep="last", maintain_order=True).collect()
    io.write_parquet(df, root / "results.parquet", config_yaml)
    io.write_parquet(front(df), root / "pareto.parquet", config_yaml)
    if quiet:
        return df
    print(tables.wrap(f"merged {len(files)} job(s), {df.height:,} disaggregated rows -> "
                      f"{summary.relative(root / 'results.parquet')}"))
    print(describe(df))
    print(tables.wrap(f"pareto: {summary.relative(root / 'pareto.parquet')}"))
    return df


# ---- what is printed ------------------------------------------------------------------------------
def _side(row: Mapping[str, Any], side: str) -> str:
    g = lambda k: row.get(f"disagg.{side}.{k}")  # noqa: E731
    plan = " ".join(f"{k}={g(k)}" for k in ("tp", "pp", "ep") if g(k) not in (None, 1) or k == "tp")
    if g("dp_attention"):
        plan += " dp_attention"
    extra = f", {g('batch_size')} prompts per pass" if side == "prefill" and g("batch_size") not in (None, 1) else ""
    return f"{g('instances')} {side} x {plan} on {g('hardware')} ({g('serving')}, {g('dtype')}{extra})"


def _num(v: Any, fmt: str = ",.2f") -> str:
    return "-" if v is None else format(v, fmt)


def describe_row(row: Mapping[str, Any]) -> str:
    """One disaggregated point, readably."""
    load = (f"concurrency {row['concurrency']}" if row.get("concurrency") is not None
            else f"request_rate {row['request_rate']:g}/s")
    lines = [f"[{row['model_id']}] disaggregated: {_side(row, 'prefill')}",
             f"  + {_side(row, 'decode')} = {row['num_devices']:g} devices",
             f"  load: {load}, {row['input_seq']} tokens in, {row['output_seq']} out"]
    if row.get("disagg.ratio") == "auto":
        lines.append(f"  ratio=auto: P={row['disagg.prefill.instances']} D={row['disagg.decode.instances']} "
                     f"({row['disagg.ratio_note']})")
    lines += [f"  TTFT {_num(row['ttft_ms'])} ms (p99 {_num(row['ttft_p99_ms'])}), incl. KV transfer "
              f"{_num(row['kv_transfer_ms'], '.3f')} ms over {row['kv_link']}",
              f"  TPOT {_num(row['tpot_ms'])} ms (p99 {_num(row['tpot_p99_ms'])}), "
              f"{_num(row['tokens_per_s_per_user'], ',.1f')} tokens/s per user",
              f"  throughput {_num(row['throughput_tokens_per_s'], ',.1f')} tokens/s, "
              f"{_num(row['throughput_tokens_per_s_per_device'], ',.1f')} per device, "
              f"{_num(row['request_throughput_per_s'], ',.3f')} requests/s",
              f"  decode batch {_num(row['running_batch'], ',.1f')} per instance "
              f"(max {row['decode_max_batch_size']:g});"
              f" memory per device: prefill {row['prefill_memory_gb_per_device']:.1f} GB, decode weights "
              f"{row['decode_weights_gb_per_device']:.1f} GB",
              f"  power {_num(row['power_w'], ',.0f')} W, {_num(row['energy_j_per_token'], '.3f')} J/token, "
              f"${_num(row['usd_per_hour'])}/hour, ${_num(row['cost_usd_per_million_tokens'], '.3f')} per million "
              "tokens",
              f"  fits={str(row['fits']).lower()} valid={str(row['valid']).lower()}"
              + (f": {row['reason']}" if row.get("reason") else "")]
    return "\n".join(tables.wrap(line) for line in lines)


#: metrics of the grid table, under short headers
METRICS = {"num_devices": "GPUs", "ttft_ms": "TTFT ms", "tpot_ms": "TPOT ms",
           "throughput_tokens_per_s_per_device": "tok/s/GPU", "tokens_per_s_per_user": "tok/s/user",
           "kv_link": "KV link", "fits": "fits"}
MAX_ROWS = 40


def describe(df: pl.DataFrame) -> str:
    """One point: ``describe_row``; more: a table of the keys that vary and the metrics, then reasons."""
    if df.height == 1:
        return describe_row(df.row(0, named=True))
    varying = [c for c in IDENTITY if c in df.columns and c != "model_id" and df[c].n_unique() > 1]
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    t.add_column("point: " + ", ".join(c.removeprefix("disagg.") for c in varying) if varying else "point",
                 overflow="fold")
    for c in METRICS:
        t.add_column(METRICS[c], justify="right", overflow="fold")
    for row in df.head(MAX_ROWS).iter_rows(named=True):
        t.add_row(" ".join(str(row[c]) for c in varying),
                  *(_num(row[c], "g" if c == "num_devices" else ",.2f") if isinstance(row[c], float)
                    else str(row[c]).lower() for c in METRICS))
    out = [f"[{df['model_id'][0]}] disaggregated: {df.height} points"
           + (f" (first {MAX_ROWS} shown)" if df.height > MAX_ROWS else ""), tables.render(t, tables.terminal_width())]
    reasons = df.filter(pl.col("reason").is_not_null()).group_by("reason").len() if "reason" in df.columns else None
    if reasons is not None and reasons.height:
        out += ["reasons:", *(tables.wrap(f"  {n} x {r}") for r, n in reasons.iter_rows())]
    return "\n".join(out)


__all__ = ["check_value", "describe", "evaluate", "merge", "points", "requested", "run_disagg", "section"]
