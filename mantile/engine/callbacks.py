"""Hydra callback: at the end of a multirun, merge the jobs' results and print the summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf


class MergeResults(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from mantile.summarize import summarize

        plain = OmegaConf.to_container(config, resolve=False)
        assert isinstance(plain, dict)
        study = (plain.get("study") or {}).get("name")
        summarize(Path(config.hydra.sweep.dir), pareto_cfg=plain.get("pareto"), plot=bool(plain.get("plot")),
                  sla_cfg=plain.get("sla"), study=study)
