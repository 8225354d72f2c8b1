"""Shared test fixtures: repo paths, the calibration file, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CALIBRATION = REPO / "benchmarks" / "calibration" / "h100_sxm_pytorch_bf16.jsonl"


@pytest.fixture
def run_cli(tmp_path: Path):
    """Run ``python -m <module> args...`` in tmp_path; returns CompletedProcess (text)."""

    def _run(module: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        return subprocess.run([sys.executable, "-m", module, *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=timeout, env=env)

    return _run
