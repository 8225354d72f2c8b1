"""Every ``python -m mantile`` command of the README runs as written and, with COLUMNS=120, prints no
line wider than 120 characters."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

#: commands that need a cluster or a scheduler, not this machine
NEEDS_A_CLUSTER = ("executor=dask", "executor=ray", "hydra/launcher=submitit_slurm", "...")


def readme_commands() -> list[str]:
    """Indented (4-space) code-block lines of the README that start with ``python -m mantile`` (with
    their backslash continuations joined)."""
    text = (REPO / "README.md").read_text()
    joined = re.sub(r"\\\n\s*", "", text)
    cmds = [line.strip() for line in joined.splitlines()
            if re.match(r"^ {4}(\S.*&& )?python -m mantile[ .]", line)]
    cmds = [c.split("&& ")[-1] for c in cmds]
    return [c for c in cmds if c.split()[2] in ("mantile", "mantile.cli.summarize")
            and not any(n in c for n in NEEDS_A_CLUSTER)]


def test_the_readme_has_cli_commands() -> None:
    cmds = readme_commands()
    assert len(cmds) >= 6 and any("study=capacity" in c for c in cmds) and any(" -m " in c for c in cmds)


@pytest.mark.slow
@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_runs_and_fits_120_columns(command: str, tmp_path: Path) -> None:
    args = shlex.split(command)
    if args[2] == "mantile.cli.summarize":  # needs a multirun to summarize: the README's headline one
        first = [sys.executable, "-m", "mantile", "model=llama_3.3_70b", "hardware=nvidia_nvl72_rack", "-m",
                 "tp=1,2,4,8", "hydra.sweep.dir=DIR"]
        assert subprocess.run(first, cwd=tmp_path, capture_output=True, timeout=300).returncode == 0
    env = dict(os.environ, COLUMNS="120", PYTHONUNBUFFERED="1")
    p = subprocess.run([sys.executable, *args[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    wide = [line for line in (p.stdout + p.stderr).splitlines() if len(line) > 120]
    assert not wide, wide
