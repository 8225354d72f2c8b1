"""Shared test fixtures: repo paths, the calibration file, and a CLI runner."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
CALIBRATION = REPO / "benchmarks" / "calibration" / "h100_sxm_pytorch_bf16.jsonl"


@functools.cache
def file_predictions(path: Path) -> tuple[tuple[Any, ...], tuple[tuple[str, str], ...]]:
    """``validate``'s predictions of one measurement file and the rows it could not predict, once per test
    session: the accuracy gates and the held-out band coverage read the same published tables, and one
    prediction of serving_results.csv takes most of a minute here. Rows are predicted one by one, so the
    predictions of several files are the concatenation of each file's."""
    from mantile.validate import predictions, read_rows

    errors: list[tuple[str, str]] = []
    preds = predictions(read_rows(path), skips={}, errors=errors, passed=[])
    return tuple(preds), tuple(errors)


@pytest.fixture
def run_cli(tmp_path: Path):
    """Run ``python -m <module> args...`` in tmp_path; returns CompletedProcess (text)."""

    def _run(module: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        return subprocess.run([sys.executable, "-m", module, *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=timeout, env=env)

    return _run
