"""``python -m mantile``: the Hydra app. One job per Hydra run; ``-m`` sweeps jobs, merged at the end."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from mantile.engine.job import run_job
from mantile.engine.runner import SweepInterrupted
from mantile.specs import SpecError, conf_dir


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")
def app(cfg: DictConfig) -> None:
    hc = HydraConfig.get()
    try:
        run_job(cfg, Path(hc.runtime.output_dir), dict(hc.runtime.choices), hc.mode == RunMode.MULTIRUN)
    except SpecError as e:
        print(f"mantile: error: {e}", file=sys.stderr)
        sys.exit(2)
    except SweepInterrupted as e:
        print(f"mantile: {e}", file=sys.stderr)
        sys.exit(130)


FLAGS_FIRST = ("-m", "--multirun")


def main() -> None:
    # argparse cannot take a flag between positional overrides ("model=x -m tp=1,2"); Hydra's own
    # parser would reject the documented command, so the multirun flag is moved to the front.
    args = sys.argv[1:]
    flags = [a for a in args if a in FLAGS_FIRST]
    sys.argv[1:] = flags + [a for a in args if a not in FLAGS_FIRST]
    app()


if __name__ == "__main__":
    main()
