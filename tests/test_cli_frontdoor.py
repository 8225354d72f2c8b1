"""The command line before any work: --help, unknown keys with a suggestion, one error format and
exit code with and without -m, range() lists, terminal-sized tables."""

from __future__ import annotations

import subprocess
import sys

import polars as pl
import pytest

from mantile.analysis.tables import View, table
from mantile.cli.overrides import prepare
from mantile.specs import SpecError


def test_plus_unknown_key_exits_2_and_suggests_batch_size(tmp_path) -> None:
    p = subprocess.run([sys.executable, "-m", "mantile", "+batchsize=8"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2
    assert p.stderr.startswith("mantile: error: ") and "did you mean 'batch_size'?" in " ".join(p.stderr.split())
    assert not list(tmp_path.rglob("*.parquet"))


def test_help_is_mantiles_own(tmp_path) -> None:
    p = subprocess.run([sys.executable, "-m", "mantile", "--help"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60, env={"COLUMNS": "100", "PATH": ""})
    assert p.returncode == 0 and p.stdout.startswith("usage: python -m mantile")
    assert "Hydra" not in p.stdout.splitlines()[0] and "batch_size" in p.stdout and "config.yaml" in p.stdout
    assert max(len(line) for line in p.stdout.splitlines()) <= 100


@pytest.mark.parametrize("multirun", [False, True])
@pytest.mark.parametrize("arg,needle", [
    ("batchsize=8", "did you mean 'batch_size'?"), ("+batchsize=8", "did you mean 'batch_size'?"),
    ("model=llama_3.1_8", "did you mean 'llama_3.1_8b'?"), ("hardware=h100", "nvidia_h100_80gb"),
    ("sla.tpot=50", "did you mean 'sla.tpot_ms'?"), ("tp=abc", "field 'tp' = 'abc'"),
    ("tp=[1,2", "cannot parse"), ("summary.colums=[ttft_ms]", "did you mean 'summary.columns'?"),
])
def test_malformed_overrides_fail_the_same_way_with_and_without_m(multirun: bool, arg: str, needle: str) -> None:
    with pytest.raises(SpecError) as e:
        prepare([arg], multirun)
    assert needle in str(e.value)


def test_job_sweep_without_m_says_how() -> None:
    with pytest.raises(SpecError, match=r"needs -m .* tp='\[1,2\]'"):
        prepare(["tp=1,2"], multirun=False)
    assert prepare(["tp=1,2"], multirun=True) == ["tp=1,2"]


def test_spellings_hydra_would_refuse_are_normalized() -> None:
    # range(1, 257, 64) = 1, 65, 129, 193; the stop is excluded as in Python
    assert prepare(["batch_size=range(1,257,64)"], False) == ["batch_size=[1,65,129,193]"]
    assert prepare(["+batch_size=8", "+study=capacity", "efficiency=hopper", "+efficiency=hopper"], False) == [
        "batch_size=8", "study=capacity", "+efficiency=hopper", "+efficiency=hopper"]
    assert prepare(["--cfg", "job", "hydra.run.dir=x", "hydra/launcher=basic"], False)[1] == "job"


def test_tables_show_every_varying_key_and_fit_the_width() -> None:
    # four rows differing only in input length and dtype: the plan column tells them apart
    df = pl.DataFrame({"model_id": ["m"] * 4, "hardware_id": ["h"] * 4, "tp": [2] * 4, "pp": [1] * 4,
                       "dtype": ["bf16", "fp8", "bf16", "fp8"], "input_seq": [512, 512, 8192, 8192],
                       "output_seq": [256] * 4, "batch_size": [8] * 4, "ttft_ms": [1.0, 2.0, 3.0, 4.0],
                       "tpot_ms": [5.0] * 4, "fits": [True] * 4})
    text = table(df, None, View(width=60))
    lines = text.splitlines()
    assert lines[0] == "m on h, tp=2, out=256"  # the keys every row shares; pp=1 says nothing
    plans = [line.split("  ")[0] for line in lines[3:]]
    assert plans == ["bf16 in=512", "fp8 in=512", "bf16 in=8192", "fp8 in=8192"]
    assert max(len(line) for line in lines) <= 60
    wide = table(df, ("ttft_ms", "tpot_ms", "fits") * 10, View(width=40))
    assert max(len(line) for line in wide.splitlines()) <= 40


@pytest.mark.slow
def test_csv_output_and_summarize_of_a_single_run(run_cli, tmp_path) -> None:
    p = run_cli("mantile", "model=llama_3.1_8b", "hardware=nvidia_h100_80gb", "batch_size=[1,8]",
                "output.format=csv", "hydra.run.dir=run")
    assert p.returncode == 0, p.stderr
    assert pl.read_csv(tmp_path / "run" / "results.csv")["batch_size"].to_list() == [1, 8]
    s = run_cli("mantile.cli.summarize", "run")
    assert s.returncode == 0, s.stderr
    assert "merged 1 job(s), 2 rows" in s.stdout
    assert pl.read_parquet(tmp_path / "run" / "results.parquet").height == 2  # not doubled
