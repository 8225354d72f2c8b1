"""One Hydra job: composed config -> SweepSpec -> run -> results.parquet + pareto.parquet + summary.

Everything in the config is validated (errors name the file or key, the value and what is valid)
before any work starts: model, hardware, serving, sweep axes, executor, pareto, sla, study.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from omegaconf import DictConfig, OmegaConf

from mantile.analysis import summary
from mantile.analysis.pareto import DEFAULT_BY
from mantile.analysis.sla import Sla
from mantile.analysis.tables import DEFAULT_VIEW, View
from mantile.engine import io, limits
from mantile.engine.bounds import check_size
from mantile.engine.runner import EngineSettings, ParetoSettings, RunResult, run
from mantile.engine.spec import (
    AXES,
    CLI_SPEC_KEYS,
    SCHEDULER_OVERRIDES,
    SweepSpec,
    System,
    check_axes,
    resolve_serving,
    system_efficiency,
)
from mantile.specs import ServingProfile, SpecError
from mantile.specs._load import build
from mantile.specs.catalog import hardware_from_dict, load_serving, model_from_dict, serving_from_dict
from mantile.specs.hardware import EfficiencyProfile

EXECUTOR_KEYS = ("n_jobs", "backend", "address", "chunk_size", "progress", "keep_in_memory")
LATENCIES = ("tpot_ms", "ttft_ms", "e2e_latency_ms")
COSTS = (None, "cost_usd_per_million_tokens", "energy_j_per_token")
STUDIES = ("capacity", "recommend")
GRID_NOTICE_POINTS = 5_000_000  # grids from this size on get a size and time estimate before they start
FORMATS = ("parquet", "csv")


def executor_settings(cfg: DictConfig) -> EngineSettings:
    """``executor.*``: how the grid is run (workers, backend, chunks); never what is computed."""
    raw = _plain(cfg.get("executor")) or {}
    unknown = sorted(set(raw) - set(EXECUTOR_KEYS))
    if unknown:
        raise SpecError("executor", unknown[0], raw[unknown[0]], f"valid keys: {list(EXECUTOR_KEYS)}")
    return build(EngineSettings, {k: raw[k] for k in EXECUTOR_KEYS if k in raw}, "executor")  # checks types


def pareto_settings(cfg: Any) -> ParetoSettings:
    p = dict(cfg.get("pareto") or {})
    settings = ParetoSettings(latency=p.get("latency", "tpot_ms"),
                              throughput=p.get("throughput", "throughput_tokens_per_s_per_device"),
                              by=tuple(p.get("by") or ()) if "by" in p else DEFAULT_BY,
                              cost=p.get("cost"))
    if settings.latency not in LATENCIES:
        raise SpecError("pareto", "latency", settings.latency, LATENCIES)
    if settings.cost not in COSTS:
        raise SpecError("pareto", "cost", settings.cost, COSTS)
    return settings


@dataclass(frozen=True)
class Study:
    """``study=...`` presets: what to do with the grid beyond evaluating it."""

    name: str | None = None
    max_batch_size: int = 16384  # capacity: ceiling of the batch ladder
    settings: dict[str, Any] | None = None  # recommend: the search space (conf/study/recommend.yaml)

    @classmethod
    def from_config(cls, cfg: DictConfig) -> Study:
        raw = _plain(cfg.get("study")) or {}
        if raw.get("name") not in STUDIES:
            raise SpecError("study", "name", raw.get("name"), STUDIES)
        unknown = sorted(set(raw) - {"name", "max_batch_size", "description"})
        if raw["name"] == "recommend":  # its keys are checked by cli.recommend
            return cls("recommend", cls.max_batch_size, raw)
        if unknown:
            raise SpecError("study", unknown[0], raw[unknown[0]], "valid keys: name, max_batch_size")
        size = raw.get("max_batch_size", cls.max_batch_size)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise SpecError("study", "max_batch_size", size, "a positive integer (the capacity ladder's ceiling)")
        return cls(raw["name"], check_size("max_batch_size", size, "study"))


def _stated_limits(serving: ServingProfile, serving_id: str) -> dict[str, int]:
    """The engine launch limits (``serving.scheduler.max_num_seqs``, ``.max_num_batched_tokens``) the
    command line or an experiment set: those named in Hydra's overrides or differing from the profile's
    file. They apply on every device, as ``estimate``'s keywords of the same names do."""
    try:
        from hydra.core.hydra_config import HydraConfig

        named = {o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task}
    except ValueError:  # not inside a Hydra run (tests build specs from a composed config)
        named = set()
    try:
        file = load_serving(serving_id).scheduler
    except SpecError:  # a profile that is not a catalog file: only what was named counts
        file = None
    out = {}
    for key in SCHEDULER_OVERRIDES:
        value = getattr(serving.scheduler, key)
        if value >= 1 and (f"serving.scheduler.{key}" in named or (file is not None and value != getattr(file, key))):
            out[key] = int(value)
    return out


def spec_from_config(cfg: DictConfig, model_id: str, hardware_id: str, serving_id: str
                     ) -> tuple[SweepSpec, EngineSettings]:
    """Validate the whole composed config (errors name the file/field) before any work starts."""
    model = model_from_dict(cfg.model, f"conf/model/{model_id}.yaml")
    hw = hardware_from_dict(cfg.hardware, f"conf/hardware/{hardware_id}.yaml")
    serving = serving_from_dict(cfg.serving, f"conf/serving/{serving_id}.yaml")
    stated = _stated_limits(serving, serving_id)
    if stated:  # the engine's launch flags, as the user gave them, win over the profile's per-device rules
        serving = resolve_serving(serving, **stated)
    raw = {k: _plain(cfg.get(k)) for k in AXES if cfg.get(k) is not None}
    spec_section = _plain(cfg.get("spec")) or {}
    unknown = sorted(set(spec_section) - {"method", "num_tokens", "acceptance", "draft_model"})
    if unknown:
        raise SpecError("spec", unknown[0], spec_section[unknown[0]],
                        "valid keys: method, num_tokens, acceptance, draft_model")
    raw.update({CLI_SPEC_KEYS[f"spec.{k}"]: v for k, v in spec_section.items()
                if f"spec.{k}" in CLI_SPEC_KEYS and v is not None})
    if spec_section.get("draft_model") is not None:
        serving = resolve_serving(serving, draft_model=str(spec_section["draft_model"]))
    axes = check_axes(raw)
    settings = executor_settings(cfg)
    # +efficiency=<generation> replaces the card's own profile (e.g. Hopper constants on another card)
    eff = (build(EfficiencyProfile, _plain(cfg.efficiency), "conf/efficiency")
           if cfg.get("efficiency") is not None else system_efficiency(hw, serving))
    system = System(hardware_id, hw, eff)
    return SweepSpec({model_id: model}, {hardware_id: system}, axes, serving), settings


def _plain(v: Any) -> Any:
    return OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v


def output_format(cfg: Any) -> str:
    """``output.format``: parquet (always written: the merge and ``summarize`` read it) or csv (also
    writes results.csv, pareto.csv and capacity.csv next to the Parquet files)."""
    raw = _plain(cfg.get("output")) or {}
    unknown = sorted(set(raw) - {"format"})
    if unknown:
        raise SpecError("output", unknown[0], raw[unknown[0]], "valid keys: format")
    fmt = raw.get("format", "parquet")
    if fmt not in FORMATS:
        raise SpecError("output", "format", fmt, FORMATS)
    return str(fmt)


def write_csv(out_dir: Path, fmt: str) -> list[Path]:
    """With ``output.format=csv``: a CSV copy of each table of ``out_dir``."""
    if fmt != "csv":
        return []
    written = []
    for name in ("results", "pareto", "capacity"):
        src = out_dir / f"{name}.parquet"
        if src.is_file():
            pl.scan_parquet(src).sink_csv(out_dir / f"{name}.csv")
            written.append(out_dir / f"{name}.csv")
    return written


def run_job(cfg: DictConfig, out_dir: Path, choices: dict[str, str], multirun: bool) -> RunResult:
    from mantile.cli import disagg

    if disagg.requested(cfg):  # disagg.* keys: P prefill + D decode instances (cli/disagg.py)
        df = disagg.run_disagg(cfg, choices, out_dir, OmegaConf.to_yaml(cfg), multirun)
        return RunResult(df.height, 0.0, df, pl.DataFrame())
    spec, settings = spec_from_config(cfg, choices["model"], choices["hardware"],
                                      choices.get("serving", "vllm"))
    pareto, sla = pareto_settings(cfg), Sla.from_config(_plain(cfg.get("sla")))
    study = Study.from_config(cfg) if cfg.get("study") is not None else Study()
    view, fmt = View.from_config(_plain(cfg.get("summary"))), output_format(cfg)
    if spec.n_points >= GRID_NOTICE_POINTS:  # the runner refuses one whose output cannot fit (limits.check_disk)
        print(f"mantile: grid of {limits.estimate_output(spec, settings.n_jobs).describe()}", file=sys.stderr)
    config_yaml = OmegaConf.to_yaml(cfg)
    capacity = None
    if study.name == "recommend":
        from mantile.cli.recommend import run_recommend

        run_recommend(study.settings or {}, choices["model"], cfg, out_dir, config_yaml)
        return RunResult(0, 0.0, pl.DataFrame(), pl.DataFrame())
    if study.name == "capacity":
        from mantile.analysis.capacity import run_capacity

        res, capacity = run_capacity(spec, settings, out_dir, config_yaml, pareto, sla, study.max_batch_size)
    else:
        res = run(spec, settings, out_dir / "results.parquet", config_yaml, pareto)
    io.write_parquet(res.pareto, out_dir / "pareto.parquet", config_yaml)
    write_kernels(spec, res.pareto, out_dir, config_yaml, bool(cfg.get("show_kernels", False)))
    print(summary.describe(res, f"[{choices['model']} on {choices['hardware']}] "))
    if not multirun:  # a multirun prints the merged summary once, at the end
        # a table that was not kept is scanned from disk: the streaming engine keeps memory bounded
        with pl.Config(engine_affinity="streaming" if res.results is None else "auto"):
            report(res.lazy(), res.pareto, out_dir, pareto, sla, bool(cfg.get("plot", False)), view, capacity)
    for path in write_csv(out_dir, fmt):
        print(f"csv: {summary.relative(path)}")
    return res


def write_kernels(spec: SweepSpec, front: Any, out_dir: Path, config_yaml: str, show: bool) -> None:
    """``kernels.parquet``: the named kernels of every Pareto point's prefill and decode step; with
    ``show_kernels=true`` the decode step of the first point is printed kernel by kernel."""
    from mantile.engine.kernels import kernel_frame, top_kernels_text

    kernels = kernel_frame(spec, front)
    if kernels.is_empty():
        return
    io.write_parquet(kernels, out_dir / "kernels.parquet", config_yaml)
    if show:
        print(top_kernels_text(kernels))


def report(lf: Any, front: Any, out_dir: Path, pareto: ParetoSettings, sla: Sla, plot: bool,
           view: View = DEFAULT_VIEW, capacity: pl.DataFrame | None = None) -> None:
    """Print each table once: the capacity table (capacity study) or the Pareto front and the SLA
    ranking, then the reasons; draw the plots if asked."""
    if capacity is not None:
        from mantile.analysis.capacity import curves

        print(summary.capacity_text(capacity, curves(lf, capacity, sla), sla, view))
        print(f"capacity: {summary.relative(out_dir / 'capacity.parquet')}")
        print(f"Pareto front ({front.height} points): {summary.relative(out_dir / 'pareto.parquet')}")
        texts = [summary.invalid_text(lf)]
    else:
        texts = [summary.pareto_text(front, pareto.latency, pareto.throughput, view),
                 summary.sla_text(lf, sla, view=view), summary.invalid_text(lf)]
    for text in texts:
        if text:
            print(text)
    if plot:
        from mantile.analysis.plot import plot_fronts

        for path in plot_fronts(lf, front, out_dir, pareto.latency, pareto.throughput, pareto.by, sla):
            print(f"plot: {summary.relative(path)}")
