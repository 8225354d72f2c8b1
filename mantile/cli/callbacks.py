"""Hydra callbacks: check every job's overrides before the first job runs; at the end of a multirun,
merge the jobs' results and print the summary."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from mantile.cli.guard import require_writable
from mantile.engine.spec import AXES, CLI_SPEC_KEYS, check_axis
from mantile.specs import SpecError, ids

GROUPS = ("model", "hardware", "parallelism", "workload", "serving", "executor", "study", "experiment",
          "efficiency")


def check_sweep_overrides(overrides: list[str]) -> None:
    """Validate the values of every job of a ``-m`` sweep (sweep keys and catalog ids) up front, so a
    bad value in the last job stops the run before the first job does any work."""
    for override in OverridesParser.create().parse_overrides(overrides):
        key = CLI_SPEC_KEYS.get(override.key_or_group, override.key_or_group)
        values = list(override.sweep_iterator()) if override.is_sweep_override() else [override.value()]
        for value in values:
            if key.startswith("disagg."):
                from mantile.cli.disagg import check_value

                for v in value if isinstance(value, list) else [value]:
                    check_value(key, v)
            elif key in AXES and value is not None:
                check_axis(key, value)
            elif key in GROUPS and value is not None and value not in ids(key):
                close = difflib.get_close_matches(str(value), ids(key), n=1, cutoff=0.5)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise SpecError("command line", key, value, f"{hint}valid: {', '.join(ids(key))} "
                                f"(files of conf/{key}/)")


class MergeResults(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        require_writable(Path(config.hydra.run.dir))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        require_writable(Path(config.hydra.sweep.dir))
        try:
            check_sweep_overrides(list(config.hydra.overrides.task))
        except SpecError as e:
            print(f"mantile: error: {e}", file=sys.stderr)
            sys.exit(2)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from mantile.cli.summarize import summarize

        plain = OmegaConf.to_container(config, resolve=False)
        assert isinstance(plain, dict)
        study = (plain.get("study") or {}).get("name")
        summarize(Path(config.hydra.sweep.dir), pareto_cfg=plain.get("pareto"), plot=bool(plain.get("plot")),
                  sla_cfg=plain.get("sla"), study=study, view_cfg=plain.get("summary"),
                  output_cfg=plain.get("output"))
