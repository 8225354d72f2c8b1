"""``POST /disagg/estimate`` (mantile/api/disagg.py): the same row as ``mantile.estimate_disagg``, and bad
bodies as 422s naming the field."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest

import mantile
from mantile.api import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

H100, H200 = "nvidia_h100_80gb", "nvidia_h200_141gb"
BODY: dict[str, Any] = {"model_id": "llama_3.3_70b", "hardware_config": H100, "input_seq": 2048, "output_seq": 256,
                        "concurrency": 64, "prefill": {"tensor_parallel": 2, "instances": 2},
                        "decode": {"tensor_parallel": 4}}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app()) as c:
        yield c


def _equal(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert set(want) <= set(got)
    for k, v in want.items():
        assert got[k] == (pytest.approx(v) if isinstance(v, float) else v), k


def test_the_route_answers_estimate_disaggs_row(client: TestClient) -> None:
    r = client.post("/disagg/estimate", json=BODY)
    assert r.status_code == 200, r.text
    want = mantile.estimate_disagg("llama_3.3_70b", 2048, 256, {"hardware": H100, "tp": 2, "instances": 2},
                                   {"hardware": H100, "tp": 4}, concurrency=64)
    _equal(r.json(), want)
    assert r.json()["num_devices"] == 2 * 2 + 4  # by hand


def test_a_finite_run_is_estimate_disaggs_finite_run(client: TestClient) -> None:
    r = client.post("/disagg/estimate", json={**BODY, "num_requests": 640})
    assert r.status_code == 200, r.text
    want = mantile.estimate_disagg("llama_3.3_70b", 2048, 256, {"hardware": H100, "tp": 2, "instances": 2},
                                   {"hardware": H100, "tp": 4}, concurrency=64, num_requests=640)
    _equal(r.json(), want)
    assert r.json()["ttft_ms"] > client.post("/disagg/estimate", json=BODY).json()["ttft_ms"]  # the first wave


def test_sides_on_other_hardware_and_ratio_auto(client: TestClient) -> None:
    body = {**BODY, "concurrency": None, "request_rate": 6.0, "ratio": "auto", "prefill": {"tensor_parallel": 2},
            "decode": {"hardware_config": H200, "tensor_parallel": 2, "dtype": "fp8", "serving": "sglang"}}
    r = client.post("/disagg/estimate", json=body)
    assert r.status_code == 200, r.text
    pre, dec = {"hardware": H100, "tp": 2}, {"hardware": H200, "tp": 2, "dtype": "fp8", "serving": "sglang"}
    _equal(r.json(), mantile.estimate_disagg("llama_3.3_70b", 2048, 256, pre, dec, request_rate=6.0, ratio="auto"))
    chosen = mantile.disagg_ratio("llama_3.3_70b", 2048, 256, pre, dec, request_rate=6.0)
    got = r.json()
    assert (got["disagg.prefill.instances"], got["disagg.decode.instances"]) == (chosen["prefill_instances"],
                                                                              chosen["decode_instances"])
    assert got["kv_link"] == "network" and got["disagg.decode.hardware"] == H200


@pytest.mark.parametrize("change,field,words", [
    ({"prefill": {"tensor_paralel": 2}}, "prefill.tensor_paralel", ["not a known field"]),
    ({"decode": {"hardware_config": "nvidia_h999"}}, "decode.hardware_config", ["nvidia_h999", H100]),
    ({"decode": {"serving": "vllx"}}, "decode.serving", ["vllx", "sglang"]),
    ({"decode": {"dtype": "fp9"}}, "decode.dtype", ["fp9", "bf16"]),
    ({"prefill": {"tensor_parallel": 0}}, "prefill.tensor_parallel", ["0"]),
    ({"hardware_config": None}, "prefill.hardware_config", ["GET /hardware"]),
    ({"concurrency": None}, "concurrency", ["exactly one load"]),
    ({"request_rate": 2.0}, "concurrency", ["exactly one load"]),
    ({"ratio": "balanced"}, "ratio", ["balanced", "auto"]),
    ({"ratio": "auto", "prefill": {}}, "ratio", ["request_rate", "max_devices"]),  # a closed loop, no budget
    ({"ratio": "auto", "concurrency": None, "request_rate": 1.0}, "prefill.instances", ["ratio='auto'"]),
    ({"max_devices": 8}, "max_devices", ["without ratio='auto'"]),
    ({"num_requests": 64, "concurrency": None, "request_rate": 2.0}, "num_requests", ["concurrency"]),
    ({"num_requests": -1}, "num_requests", ["0"]),
    ({"model_id": "llama_9"}, "model_id", ["llama_3.3_70b"]),
])
def test_bad_bodies_are_422_naming_the_field(client: TestClient, change: dict[str, Any], field: str,
                                             words: list[str]) -> None:
    r = client.post("/disagg/estimate", json={**BODY, **change})
    assert r.status_code == 422, r.text
    got = r.json()
    assert got["detail"][0]["field"] == field, got
    for word in words:
        assert word in got["message"], got["message"]
