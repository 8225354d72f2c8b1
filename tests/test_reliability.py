"""Hostile input, faults and concurrency outside the server (issue 16): catalog files with impossible
numbers, sizes that would overflow, executor and study values, temp files on a failing disk, runs in
the same second or the same directory, ``kill -9`` of a sweep, and ``validate`` on malformed files."""

from __future__ import annotations

import errno
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import psutil
import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf

import mantile
from mantile import validate
from mantile.cli.guard import fatal_message
from mantile.cli.job import Study, executor_settings
from mantile.engine import io
from mantile.specs import EfficiencyProfile, SpecError, conf_dir
from mantile.specs._load import build
from mantile.specs.catalog import hardware_from_dict
from tests.test_sweep_robustness import BIG

H100 = "hardware/nvidia_h100_80gb.yaml"
HOPPER = "efficiency/hopper.yaml"
RUN = ["model=llama_3.1_8b", "hardware=nvidia_h100_80gb", "batch_size=[1,2,4,8]", "input_seq=128", "output_seq=16",
       "executor.progress=false"]


# ---- catalogs ----------------------------------------------------------------------------------------
def _copy_with(tmp_path: Path, rel: str, key: str, text: str) -> Path:
    """A copy of a catalog file with one value replaced by ``text`` (YAML, e.g. ``.nan``)."""
    data = OmegaConf.load(conf_dir() / rel)
    OmegaConf.update(data, key, "__VALUE__")
    path = tmp_path / Path(rel).name
    path.write_text(OmegaConf.to_yaml(data).replace("__VALUE__", text))
    return path


@pytest.mark.parametrize("rel,key,text,allowed", [
    (HOPPER, "kernel_overhead_us", "-10", "a number >= 0"),
    (H100, "device.hbm_bandwidth_tb_per_s", ".nan", "a finite number"),
    (H100, "device.memory_gib", "0", "a positive number"),
    (H100, "device.peak_tflops.bf16", ".inf", "a finite number"),
    (H100, "interconnect.scale_out.bandwidth_gb_per_s_per_device", "-50", "a positive number"),
    (H100, "system.num_devices", "0", "an integer >= 1"),
    (HOPPER, "memory_efficiency", "1.5", "a fraction in (0, 1]"),
])
def test_impossible_catalog_value_stops_naming_file_and_field_once(tmp_path: Path, rel: str, key: str, text: str,
                                                                   allowed: str) -> None:
    path = _copy_with(tmp_path, rel, key, text)
    data = OmegaConf.to_container(OmegaConf.load(path))
    with pytest.raises(SpecError) as e:
        if rel == HOPPER:
            build(EfficiencyProfile, data, str(path))  # type: ignore[arg-type]
        else:
            hardware_from_dict(data, str(path))
    message = str(e.value)
    assert message.startswith(f"{path}: field '{key}' = ") and allowed in message, message
    assert "\n" not in message and message.count(key.split(".")[-1]) == 1


def test_kernel_overhead_minus_10_no_longer_gives_a_negative_tpot() -> None:
    eff = OmegaConf.to_container(OmegaConf.load(conf_dir() / HOPPER))
    assert isinstance(eff, dict)
    with pytest.raises(SpecError, match="kernel_overhead_us"):
        build(EfficiencyProfile, {**eff, "kernel_overhead_us": -10.0}, "hopper copy")


# ---- sizes and settings ------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,field", [
    ({"batch_size": 2**63}, "batch_size"), ({"batch_size": 2**70}, "batch_size"),
    ({"input_seq": 10**12}, "input_seq"), ({"output_seq": 2**64}, "output_seq"), ({"tp": 2**40}, "tp"),
])
def test_sizes_that_would_overflow_are_rejected_naming_the_field(kwargs: dict[str, int], field: str) -> None:
    args = {"model": "llama_3.1_8b", "hardware": "nvidia_h100_80gb", "batch_size": 1, "input_seq": 128,
            "output_seq": 16, **kwargs}
    with pytest.raises(SpecError, match=f"'{field}'.*at most"):
        mantile.estimate(**args)  # type: ignore[arg-type]


def test_layer_metrics_rejects_absurd_lengths() -> None:
    with pytest.raises(SpecError, match="'seq_length'.*at most"):
        mantile.layer_metrics("llama_3.1_8b", "nvidia_h100_80gb", "attention", seq_length=2**63)


@pytest.mark.parametrize("key,value", [("n_jobs", "abc"), ("chunk_size", "1k"), ("progress", "maybe"),
                                       ("n_jobs", 0), ("chunk_size", 0), ("keep_in_memory", "yes")])
def test_executor_values_are_checked(key: str, value: object) -> None:
    with pytest.raises(SpecError, match=f"executor: field '{key}'"):
        executor_settings(OmegaConf.create({"executor": {key: value}}))


@pytest.mark.parametrize("value", [0, -1, "abc", 2**63, True])
def test_study_max_batch_size_is_checked(value: object) -> None:
    with pytest.raises(SpecError, match="study: field 'max_batch_size'"):
        Study.from_config(OmegaConf.create({"study": {"name": "capacity", "max_batch_size": value}}))


# ---- temp files and disk errors ----------------------------------------------------------------------
@pytest.mark.parametrize("where", ["close", "write_table"])
def test_no_temp_file_when_the_disk_fills(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    def full(*_: object, **__: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, where, full)
    with pytest.raises(OSError) as e:
        io.write_parquet(pl.DataFrame({"a": [1, 2, 3]}), tmp_path / "pareto.parquet")
    assert e.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []
    assert fatal_message(e.value) is not None and "disk full" in str(fatal_message(e.value))


def test_fatal_messages_are_one_line() -> None:
    for exc in (OSError(errno.ENOSPC, "x", "/a/b"), OSError(errno.EROFS, "x", "/a"), OSError(errno.EACCES, "x"),
                MemoryError()):
        msg = fatal_message(exc)
        assert msg and "\n" not in msg
    assert fatal_message(OSError(errno.ENOENT, "x")) is None


def _mount_tmpfs(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@pytest.mark.slow
# 64k: room for the run's config files and the disk guard's estimate for 180 rows (84 bytes a row, x1.2: 18 kB),
# so the sweep starts, and not for its 90 kB results file (a small Parquet file is mostly its 83 columns' footer)
@pytest.mark.parametrize("options,needle", [("size=64k", "disk full"), ("size=1m,ro", "Read-only file system")])
def test_full_or_read_only_disk_ends_in_one_line(run_cli, tmp_path: Path, options: str, needle: str) -> None:
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, options):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        p = run_cli("mantile", *RUN, "tp=[1,2,4,8]", "input_seq=[128,256,512,1024,2048]",
                    "batch_size=[1,2,4,8,16,32,64,128,256]", f"hydra.run.dir={disk}/run")
        assert p.returncode == 1, p.stderr
        assert "Traceback" not in p.stderr and needle in p.stderr, p.stderr
        assert len([line for line in p.stderr.splitlines() if "mantile: error" in line]) == 1
        assert not list(disk.rglob(".*.tmp"))
    finally:
        subprocess.run(["umount", str(disk)], check=False)


# ---- runs started together ---------------------------------------------------------------------------
def _cmdline(p: psutil.Process) -> list[str]:
    """A process's command line; empty for one that exited or is not readable yet."""
    try:
        return p.cmdline()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return []


def _start(cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "mantile", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))


@pytest.mark.slow
def test_two_runs_started_in_the_same_second_keep_their_results(tmp_path: Path) -> None:
    procs = [_start(tmp_path, *RUN, f"output_seq={n}") for n in (16, 32)]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.communicate()
    runs = sorted(tmp_path.glob("outputs/runs/*/results.parquet"))
    assert len(runs) == 2, runs
    assert {pq.read_table(r).column("output_seq")[0].as_py() for r in runs} == {16, 32}


@pytest.mark.slow
def test_second_run_into_a_busy_directory_is_refused(tmp_path: Path) -> None:
    first = _start(tmp_path, *BIG, "hydra.run.dir=shared")
    t0 = time.time()
    while not (tmp_path / "shared" / ".mantile.lock").exists() or \
            not (tmp_path / "shared" / ".mantile.lock").read_text():
        assert first.poll() is None and time.time() - t0 < 60, first.communicate()
        time.sleep(0.05)
    second = subprocess.run([sys.executable, "-m", "mantile", *RUN, "hydra.run.dir=shared"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    first.send_signal(signal.SIGINT)
    first.communicate(timeout=60)
    assert second.returncode == 2 and "in use by mantile pid" in second.stderr, second.stderr
    assert "Traceback" not in second.stderr


# ---- kill -9 of a sweep ------------------------------------------------------------------------------
@pytest.mark.slow
def test_kill_9_of_a_sweep_leaves_no_worker_and_no_shared_memory(tmp_path: Path) -> None:
    before = set(glob.glob("/dev/shm/mantile-*"))
    proc = _start(tmp_path, *BIG, "executor.n_jobs=2", "hydra.run.dir=run")
    parent = psutil.Process(proc.pid)
    t0 = time.time()
    while not list((tmp_path / "run").rglob(".results.parquet.*.tmp")):
        assert proc.poll() is None and time.time() - t0 < 120, proc.communicate()
        time.sleep(0.05)
    # the staging file can appear a moment before psutil reads the workers' command lines (a busy machine:
    # a worker still starting has an empty one), so look again until they show or the sweep ends
    workers: list[psutil.Process] = []
    while not workers and proc.poll() is None and time.time() - t0 < 120:
        workers = [c for c in parent.children(recursive=True) if "loky" in " ".join(_cmdline(c))]
        time.sleep(0.05)
    assert workers, "the sweep runs in worker processes"
    proc.kill()
    proc.communicate(timeout=30)  # returns: no worker holds the parent's stdout/stderr pipes
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, alive
    leftovers = set(glob.glob(f"/dev/shm/mantile-{proc.pid}-*")) | (set(glob.glob("/dev/shm/mantile-*")) - before)
    assert not leftovers, leftovers


# ---- validate on malformed files ---------------------------------------------------------------------
GOOD = {"kind": "model_decode", "model": "llama_3.1_8b", "device": "NVIDIA H100 80GB HBM3", "batch": 8,
        "context": 2048, "ms": 9.5}
LAYER = {"kind": "layer_prefill", "model": "llama_3.1_8b", "device": "NVIDIA H100", "layer": "attention",
         "batch": 1, "seq": 512, "ms": 0.4}
PUBLISHED = {"kind": "published", "model": "llama_3.1_8b", "hardware": "nvidia_h100_80gb", "tp": 1, "batch": 8,
             "input_seq": 1024, "output_seq": 128, "metric": "tpot_ms", "value": 10.0}


def _variants() -> list[tuple[str, str]]:
    """(name, file text) of malformed measurement files; each one holds at least one bad row."""
    bad_rows = [
        {**GOOD, "batch": "eight"}, {**GOOD, "batch": -1}, {**GOOD, "batch": 2**63}, {**GOOD, "batch": None},
        {**GOOD, "ms": "fast"}, {**GOOD, "ms": -3}, {**GOOD, "ms": 0}, {**GOOD, "context": 1.5e300},
        {**GOOD, "model": "gpt_9"}, {**GOOD, "model": None}, {**GOOD, "device": "TPU v5"},
        {k: v for k, v in GOOD.items() if k != "batch"}, {k: v for k, v in GOOD.items() if k != "ms"},
        {k: v for k, v in GOOD.items() if k != "model"}, {**LAYER, "layer": "conv"}, {**LAYER, "seq": 0},
        {**LAYER, "model": "llama_3.1_8b_tp3_shard"}, {k: v for k, v in LAYER.items() if k != "layer"},
        {**PUBLISHED, "metric": "speed"}, {**PUBLISHED, "tp": "two"}, {**PUBLISHED, "value": "n/a"},
        {**PUBLISHED, "hardware": "nvidia_h900"}, {**PUBLISHED, "tp": 3}, {**PUBLISHED, "dtype": "bf17"},
        {**PUBLISHED, "input_seq": 10**13}, {**GOOD, "kind": "model_prefill", "seq": "long"},
        {**GOOD, "kind": "model_prefill"}, {**GOOD, "ms": [1, 2]}, {**GOOD, "batch": {"a": 1}},
    ]
    out = [(f"row{i}", "\n".join([json.dumps(GOOD), json.dumps(r)])) for i, r in enumerate(bad_rows)]
    out += [("not_json", json.dumps(GOOD) + "\n{not json"), ("a_list", json.dumps(GOOD) + "\n[1, 2]"),
            ("a_number", json.dumps(GOOD) + "\n42"), ("a_string", json.dumps(GOOD) + '\n"row"'),
            ("nan", json.dumps(GOOD) + '\n{"kind": "model_decode", "ms": NaN}'),
            ("deep", json.dumps(GOOD) + "\n" + "[" * 100_000), ("empty", ""), ("blank", "\n\n  \n"),
            ("binary", "\x00\x01\x02"), ("truncated", json.dumps(GOOD)[:30]),
            ("unknown_kind", json.dumps(GOOD) + '\n{"kind": "mystery"}'),
            ("no_kind", json.dumps(GOOD) + '\n{"model": "llama_3.1_8b"}')]
    return out


@pytest.mark.parametrize("name,text", _variants(), ids=[n for n, _ in _variants()])
def test_validate_never_tracebacks_and_names_every_skipped_row(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               name: str, text: str) -> None:
    path = tmp_path / f"{name}.jsonl"
    path.write_text(text)
    code = validate.main([str(path), "--quiet"])
    out, err = capsys.readouterr()
    if code == 0:  # rows left out by design (a published row with an invalid plan): each one named
        assert f"skipped {path}:2: " in out, f"exit 0 with the bad row not named:\n{out}\n{err}"
    elif code == 2:  # the whole file is unusable: one line
        assert len(err.strip().splitlines()) == 1 and err.startswith("mantile.validate: error:"), err
    else:  # the bad row is named with its number and reason; the good one was compared
        assert f"skipped {path}:2: " in out or "no row could be compared" in err, out + err


def test_validate_csv_rows_are_numbered(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.csv"
    pl.DataFrame([GOOD, {**GOOD, "batch": -4}, GOOD]).write_csv(path)
    assert validate.main([str(path), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert f"skipped {path}:3:" in out and f"{path}:2:" not in out, out


def test_copied_conf_dir_is_untouched() -> None:
    assert shutil.which("python") or sys.executable  # the tests above copy files; conf/ is never written
    assert not list(conf_dir().rglob("*.tmp"))
