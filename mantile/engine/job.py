"""One Hydra job: composed config -> SweepSpec -> run -> results.parquet + pareto.parquet + summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mantile.costs.system import Options
from mantile.engine import io, summary
from mantile.engine.runner import EngineSettings, ParetoSettings, RunResult, run
from mantile.engine.spec import AXES, SweepSpec, System, check_axes
from mantile.specs import SpecError
from mantile.specs._load import build
from mantile.specs.catalog import hardware_from_dict, load_efficiency, model_from_dict
from mantile.specs.stack import KernelStack

ENGINE_KEYS = ("n_jobs", "backend", "address", "chunk_size", "progress", "keep_in_memory")
OPTION_KEYS = ("comm_overlap", "max_prefill_tokens", "memory_reserve_fraction")


def _engine(cfg: DictConfig) -> tuple[EngineSettings, Options]:
    raw: dict[str, Any] = OmegaConf.to_container(cfg.engine, resolve=True)  # type: ignore[assignment]
    unknown = sorted(set(raw) - set(ENGINE_KEYS) - set(OPTION_KEYS))
    if unknown:
        raise SpecError("engine", unknown[0], raw[unknown[0]], f"valid keys: {[*ENGINE_KEYS, *OPTION_KEYS]}")
    return (EngineSettings(**{k: raw[k] for k in ENGINE_KEYS if k in raw}),
            Options(**{k: raw[k] for k in OPTION_KEYS if k in raw}))


def pareto_settings(cfg: DictConfig) -> ParetoSettings:
    p = cfg.get("pareto") or {}
    return ParetoSettings(latency=p.get("latency", "tpot_ms"),
                          throughput=p.get("throughput", "throughput_tokens_per_s_per_device"),
                          by=tuple(p.get("by", ("model_id", "hardware_id"))), cost=p.get("cost"))


def spec_from_config(cfg: DictConfig, model_id: str, hardware_id: str, stack_id: str) -> tuple[SweepSpec, EngineSettings]:
    """Validate the whole composed config (errors name the file/field) before any work starts."""
    model = model_from_dict(cfg.model, f"conf/model/{model_id}.yaml")
    hw = hardware_from_dict(cfg.hardware, f"conf/hardware/{hardware_id}.yaml")
    stack = build(KernelStack, OmegaConf.to_container(cfg.stack, resolve=True), f"conf/stack/{stack_id}.yaml")
    axes = check_axes({k: _plain(cfg.get(k)) for k in AXES if cfg.get(k) is not None})
    settings, options = _engine(cfg)
    spec = SweepSpec({model_id: model}, {hardware_id: System(hardware_id, hw, load_efficiency(hw.device.generation))},
                     axes, stack, options)
    return spec, settings


def _plain(v: Any) -> Any:
    return OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v


def run_job(cfg: DictConfig, out_dir: Path, choices: dict[str, str], multirun: bool) -> RunResult:
    spec, settings = spec_from_config(cfg, choices["model"], choices["hardware"], choices.get("stack", "pytorch_eager"))
    pareto = pareto_settings(cfg)
    res = run(spec, settings, out_dir / "results.parquet", OmegaConf.to_yaml(cfg), pareto)
    io.write_parquet(res.pareto, out_dir / "pareto.parquet", OmegaConf.to_yaml(cfg))
    title = f"[{choices['model']} on {choices['hardware']}] "
    print(summary.describe(res, title))
    if not multirun:
        print(summary.pareto_text(res.pareto, pareto.latency, pareto.throughput))
        text = summary.invalid_text(res.results)
        if text:
            print(text)
    return res
