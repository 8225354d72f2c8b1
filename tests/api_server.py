"""Start the real HTTP server (``python -m mantile.api``) on a free loopback port, for end-to-end tests.

Also holds the product brief's request bodies, verbatim (tabs and all), so tests send exactly what
the brief's curl examples send.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_S = 60.0

# The product brief's curl bodies, byte for byte.
BRIEF_LAYER_BODY = """{
		"model_id": "llama_3.3_70b",
		"hardware_config": "nvidia_nvl72_rack",
		"layer_type": "attention",
		"batch_size": 1,
		"seq_length": 2048,
		"dtype": "bf16",
		"tensor_parallel": 8,
		"context_parallel": 1,
		"sequence_parallel": 1
	}"""
BRIEF_SYSTEM_BODY = """{
		"model_id": "llama_3.3_70b",
		"hardware_config": "nvidia_nvl72_rack",
		"batch_size": 1,
		"input_seq": 2048,
		"output_seq": 128,
		"layers": {
			"attention": { "tensor_parallel": 8, "context_parallel": 1, "dtype": "bf16" },
			"feedforward": { "tensor_parallel": 8, "sequence_parallel": 1, "dtype": "bf16" },
			"norm": { "tensor_parallel": 1, "dtype": "bf16" },
			"embedding": { "tensor_parallel": 1, "dtype": "bf16" }
		}
	}"""
JSON_HEADERS = {"Content-Type": "application/json"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url + "/hardware", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not ready after {STARTUP_TIMEOUT_S} s:\n{log.read_text()}")


@contextmanager
def running_server(*args: str, pid: list[int] | None = None) -> Iterator[str]:
    """``python -m mantile.api --host 127.0.0.1 --port <free> [args]``; yields its base URL, stops it
    after; ``pid`` (a list) receives the server's process id."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mantile.api", "--host", "127.0.0.1", "--port", str(port),
                 "--log-level", "warning", *args],
                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
            if pid is not None:
                pid.append(proc.pid)
            try:
                url = f"http://127.0.0.1:{port}"
                _wait_ready(url, proc, log)
                yield url
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
