"""Hydra callback: at the end of a multirun, merge the jobs' results and print the Pareto front."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class MergeResults(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from mantile.summarize import summarize

        summarize(Path(config.hydra.sweep.dir), pareto_cfg=config.get("pareto"))
