"""Interrupted sweeps leave no partial Parquet file and say what completed; re-running into the same
sweep directory replaces jobs instead of duplicating their rows."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

# 64 plans x 256 batches x 32 prompt lengths x 16 output lengths = 8.4M points: ~10 s of work
BIG = ["model=llama_3.3_70b", "hardware=nvidia_h100_80gb_x4", "tp=[1,2,4,8]", "pp=[1,2,4,8]", "dp=[1,2,4,8]",
       "batch_size=[" + ",".join(map(str, range(1, 257))) + "]",
       "input_seq=[" + ",".join(map(str, range(256, 8193, 256))) + "]",
       "output_seq=[" + ",".join(map(str, range(64, 1025, 64))) + "]", "executor.progress=false"]


def _start(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "mantile", *args], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))


def _started_writing(run_dir: Path) -> bool:
    """A temp file with a row group in it, or (past 2M points) a staging directory with a part."""
    return any(tmp.is_file() or any(tmp.rglob("part-*.parquet")) for tmp in run_dir.rglob(".results.parquet.*.tmp"))


def _wait_for_temp_file(run_dir: Path, proc: subprocess.Popen[str], timeout_s: float = 60) -> None:
    """Until the sweep has written its first row group or part file (mid-sweep)."""
    t0 = time.time()
    while not _started_writing(run_dir):
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout_s, "the sweep never started writing"
        time.sleep(0.05)


def _spill_dirs() -> set[str]:
    return set(glob.glob("/dev/shm/mantile-*"))


def _assert_nothing_written(run_dir: Path) -> None:
    assert not list(run_dir.rglob("*.parquet")), list(run_dir.rglob("*.parquet"))
    assert not list(run_dir.rglob(".*.tmp"))


@pytest.mark.slow
@pytest.mark.parametrize("sig,code,cause", [(signal.SIGINT, 130, "interrupted (Ctrl-C)"),
                                            (signal.SIGTERM, 143, "stopped (terminated)")])
def test_interrupted_sweep_leaves_no_partial_file(tmp_path: Path, sig: int, code: int, cause: str) -> None:
    before = _spill_dirs()
    proc = _start(tmp_path, *BIG, "hydra.run.dir=run")
    _wait_for_temp_file(tmp_path / "run", proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert f"sweep {cause} after" in err and "of 8,388,608 points; no partial file was written" in err
    _assert_nothing_written(tmp_path / "run")
    assert _spill_dirs() <= before  # the shared-memory spill directory is gone too


@pytest.mark.slow
def test_killed_worker_stops_the_sweep_cleanly(tmp_path: Path) -> None:
    proc = _start(tmp_path, *BIG, "hydra.run.dir=run")
    _wait_for_temp_file(tmp_path / "run", proc)
    workers = [p for p in psutil.Process(proc.pid).children(recursive=True)
               if "LokyProcess" in " ".join(p.cmdline())]
    assert workers, "the sweep should run on loky workers"
    workers[0].kill()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "a worker died" in err and "no partial file was written" in err
    _assert_nothing_written(tmp_path / "run")


@pytest.mark.slow
def test_interrupted_multirun_reports_completed_jobs_and_rerun_does_not_duplicate(tmp_path: Path) -> None:
    small, big = "[1,2]", "[" + ",".join(map(str, range(1, 257))) + "]"
    args = [a for a in BIG if not a.startswith("batch_size=")]
    proc = _start(tmp_path, "-m", f"batch_size={small},{big}", *args, "hydra.sweep.dir=sweep")
    _wait_for_temp_file(tmp_path / "sweep" / "1", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "completed jobs in" in err and "sweep: 0;" in err and "hydra.sweep.dir=" in err
    assert (tmp_path / "sweep" / "0" / "results.parquet").is_file()
    assert not (tmp_path / "sweep" / "1" / "results.parquet").exists()
    # finish the sweep (a smaller second job), twice: the rows are replaced, never duplicated
    small_args = [a for a in args if not a.startswith(("input_seq=", "output_seq="))]
    for _ in range(2):
        p = subprocess.run([sys.executable, "-m", "mantile", "-m", f"batch_size={small},[4,8]", *small_args,
                            "input_seq=512", "output_seq=128", "hydra.sweep.dir=sweep"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        merged = pq.read_table(tmp_path / "sweep" / "results.parquet")
        assert merged.num_rows == 64 * 4  # 64 plans x batch {1, 2} + {4, 8}
        dataset = pq.ParquetDataset(tmp_path / "sweep" / "dataset").read()
        assert dataset.num_rows == merged.num_rows
