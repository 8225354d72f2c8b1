"""``python -m mantile``: the Hydra app. One job per Hydra run; ``-m`` sweeps jobs, merged at the end."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from mantile.analysis.tables import wrap
from mantile.cli import catalogs
from mantile.cli.guard import fatal_message, output_lock, register_resolvers
from mantile.cli.job import run_job
from mantile.cli.overrides import prepare
from mantile.cli.usage import help_text
from mantile.engine.runner import SweepInterrupted
from mantile.specs import SpecError, conf_dir


def _completed_jobs(sweep_dir: Path) -> list[str]:
    return sorted((p.parent.name for p in sweep_dir.glob("*/results.parquet")), key=lambda s: (len(s), s))


register_resolvers()  # ${mantile_run_id:} in conf/config.yaml's output directories


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")
def app(cfg: DictConfig) -> None:
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    out_dir = Path(hc.runtime.output_dir)
    try:
        with output_lock(out_dir):
            run_job(cfg, out_dir, dict(hc.runtime.choices), multirun)
    except (OSError, MemoryError) as e:
        message = fatal_message(e)
        if message is None:
            raise
        print(f"mantile: error: {message}", file=sys.stderr)
        sys.exit(1)
    except SpecError as e:
        print(f"mantile: error: {e}", file=sys.stderr)
        sys.exit(2)
    except SweepInterrupted as e:
        print(f"mantile: {e}", file=sys.stderr)
        if multirun:
            sweep_dir = Path(hc.sweep.dir)
            done = _completed_jobs(sweep_dir)
            print(f"mantile: completed jobs in {sweep_dir}: {', '.join(done) or 'none'}; re-run the same "
                  f"command with hydra.sweep.dir={sweep_dir} to finish (finished jobs are replaced, not "
                  "duplicated)", file=sys.stderr)
        sys.exit(e.exit_code)


def _terminate(signum: int, frame: FrameType | None) -> None:
    # SIGTERM (a scheduler's kill, `kill PID`) unwinds like Ctrl-C: temp files are deleted, nothing
    # half-written is left, and the message says how far the sweep got.
    raise SystemExit(128 + signum)


FLAGS_FIRST = ("-m", "--multirun")


HELP = ("-h", "--help")


def main() -> None:
    # argparse cannot take a flag between positional overrides ("model=x -m tp=1,2"); Hydra's own
    # parser would reject the documented command, so the multirun flag is moved to the front.
    args = sys.argv[1:]
    if any(a in HELP for a in args):
        print(help_text())
        return
    args = [a if a != "--hydra-help" else "--help" for a in args]
    flags = [a for a in args if a in FLAGS_FIRST]
    rest = [a for a in args if a not in FLAGS_FIRST]
    try:  # one error format and exit code for every malformed override, with and without -m
        rest = prepare(catalogs.rewrite(rest), multirun=bool(flags))
    except SpecError as e:
        print(wrap(f"mantile: error: {e}"), file=sys.stderr)
        sys.exit(2)
    sys.argv[1:] = flags + rest
    signal.signal(signal.SIGTERM, _terminate)
    app()


if __name__ == "__main__":
    main()
