"""The HTTP API of the product brief: every route through a real uvicorn server with the brief's exact
bodies, numbers equal to the Python API's, 422s that name the field, the value and the valid choices,
a schema-driven fuzz run that finds no 500, and hundreds of concurrent requests answered correctly."""

from __future__ import annotations

import copy
import json
import random
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

import mantile
from mantile.api import create_app
from mantile.api.catalog import layer_categories
from mantile.costs.blocks import LAYER_TYPES
from mantile.specs import ids, load_model
from tests.api_server import BRIEF_LAYER_BODY, BRIEF_SYSTEM_BODY, JSON_HEADERS, running_server

with warnings.catch_warnings():  # starlette suggests httpx2, which this project does not use
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

SYSTEM = json.loads(BRIEF_SYSTEM_BODY)
LAYER = json.loads(BRIEF_LAYER_BODY)
CURVE_BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with running_server() as url:
        yield url


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app()) as c:
        yield c


def _estimate(body: dict[str, Any]) -> dict[str, Any]:
    return mantile.estimate(model=body["model_id"], hardware=body["hardware_config"],
                            batch_size=body["batch_size"], input_seq=body["input_seq"],
                            output_seq=body["output_seq"], layers=body["layers"])


def _without_breakdown(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items()
            if not any(k == f"{p}_{t}_ms" for p in ("prefill", "decode") for t in LAYER_TYPES)}


# ---- the brief's routes, through the real server -------------------------------------------------
@pytest.mark.slow
def test_brief_discovery_routes(server: str) -> None:
    models = httpx.get(server + "/models").json()["models"]
    assert models[0]["model_id"] in ids("model")
    assert {"llama_3.3_70b", "tinyllama_1.1b"} <= {m["model_id"] for m in models}
    llama = next(m for m in models if m["model_id"] == "llama_3.3_70b")
    assert (llama["num_hidden_layers"], llama["num_key_value_heads"], llama["vocab_size"]) == (80, 8, 128256)
    hw = httpx.get(server + "/hardware").json()
    assert hw["configs"] == ids("hardware")
    assert {"nvidia_gb200_single", "nvidia_h100_80gb", "nvidia_nvl72_rack"} <= set(hw["configs"])
    rack = next(s for s in hw["summaries"] if s["hardware_id"] == "nvidia_nvl72_rack")
    assert rack["num_devices"] == 72 and rack["peak_bf16_tflops"] > 0 and rack["hbm_bandwidth_tb_per_s"] > 0


@pytest.mark.slow
def test_brief_layers_route(server: str) -> None:
    r = httpx.get(server + "/api/layers", params={"model_id": "llama_3.3_70b"})
    assert r.status_code == 200
    layers = {c["name"]: c for c in r.json()["layers"]}
    assert list(layers) == ["attention", "feedforward", "norm", "embedding"]
    assert [layers[k]["count"] for k in layers] == [80, 80, 161, 1]  # 2 norms per block + final norm
    assert layers["attention"]["available_parallelism"] == ["tensor_parallel", "context_parallel"]
    assert "expert_parallel" not in layers["feedforward"]["available_parallelism"]  # dense model
    assert layers["attention"]["specs"]["num_key_value_heads"] == 8


@pytest.mark.slow
def test_brief_layer_metrics_body(server: str) -> None:
    r = httpx.post(server + "/config/layer-metrics", content=BRIEF_LAYER_BODY, headers=JSON_HEADERS)
    assert r.status_code == 200, r.text
    expected = mantile.layer_metrics(model="llama_3.3_70b", hardware="nvidia_nvl72_rack",
                                     layer_type="attention", batch_size=1, seq_length=2048, dtype="bf16",
                                     tp=8, cp=1, sp=1, kernels=True)
    assert r.json() == expected
    assert r.json()["latency_ms"] > 0 and r.json()["count"] == 80


@pytest.mark.slow
def test_brief_system_metrics_body(server: str) -> None:
    r = httpx.post(server + "/config/system-metrics", content=BRIEF_SYSTEM_BODY, headers=JSON_HEADERS)
    assert r.status_code == 200, r.text
    got, row = r.json(), _estimate(SYSTEM)
    assert got["fits"] is True and got["valid"] is True and got["reason"] is None
    assert {k: got[k] for k in _without_breakdown(row)} == _without_breakdown(row)
    for kind in LAYER_TYPES:
        assert got["layers"][kind] == {"prefill_ms": row[f"prefill_{kind}_ms"],
                                       "decode_ms": row[f"decode_{kind}_ms"]}
    assert got["ttft_ms"] > 0 and got["tpot_ms"] > 0 and got["throughput_tokens_per_s"] > 0
    assert (got["tp"], got["embedding_tp"], got["num_devices"]) == (8, 1, 8)


@pytest.mark.slow
def test_batch_curve_and_docs(server: str) -> None:
    body = {k: v for k, v in SYSTEM.items() if k != "batch_size"}
    r = httpx.post(server + "/config/batch-curve", json=body)
    assert r.status_code == 200, r.text
    points = r.json()["points"]
    assert [p["batch_size"] for p in points] == CURVE_BATCHES
    for p in points:
        row = _estimate({**SYSTEM, "batch_size": p["batch_size"]})
        assert p["tpot_ms"] == row["tpot_ms"]
        assert p["throughput_tokens_per_s"] == row["throughput_tokens_per_s"]
    assert httpx.get(server + "/docs").status_code == 200
    assert "/config/system-metrics" in httpx.get(server + "/openapi.json").json()["paths"]
    page = httpx.get(server + "/")
    assert page.status_code == 200 and "<title>Mantile" in page.text
    assert httpx.get(server + "/static/app.js").status_code == 200


# ---- answers that are not a plain success ------------------------------------------------------------
def test_valid_plan_that_does_not_fit_is_200_with_fits_false(client: TestClient) -> None:
    # 405e9 params x 2 bytes / 8 GPUs = 101 GB of weights per 80 GB GPU
    body = {**SYSTEM, "model_id": "llama_3.1_405b", "hardware_config": "nvidia_h100_80gb"}
    r = client.post("/config/system-metrics", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["valid"] is True and r.json()["fits"] is False
    assert r.json()["reason"] == _estimate(body)["reason"] and "does not fit" in r.json()["reason"]


def test_invalid_plan_is_422_with_the_estimators_reason(client: TestClient) -> None:
    body = copy.deepcopy(SYSTEM)
    body["layers"]["attention"]["tensor_parallel"] = body["layers"]["feedforward"]["tensor_parallel"] = 3
    body["layers"]["embedding"]["tensor_parallel"] = 3
    row = _estimate(body)
    assert row["valid"] is False
    r = client.post("/config/system-metrics", json=body)
    assert r.status_code == 422
    assert row["reason"] in r.json()["message"]
    assert r.json()["detail"][0]["field"] == "layers.attention.tensor_parallel"


def _layer(**patch: Any) -> dict[str, Any]:
    return {**LAYER, **patch}


def _system(**patch: Any) -> dict[str, Any]:
    body = copy.deepcopy(SYSTEM)
    for key, value in patch.items():
        if "." in key:
            kind, field = key.split(".")
            body["layers"][kind][field] = value
        else:
            body[key] = value
    return body


# (route, body, field named in the error, words the message must contain: the value and valid choices)
LM, SM = "/config/layer-metrics", "/config/system-metrics"
H100 = "nvidia_h100_80gb"
BAD_REQUESTS = [
    (LM, _layer(batch_size=0), "batch_size", ["0", "greater than or equal to 1"]),
    (LM, _layer(tensor_parallel=3), "tensor_parallel", ["3", "num_attention_heads (64)"]),
    (LM, _layer(seq_length=200_000), "seq_length", ["200000", "131072"]),
    (LM, _layer(hardware_config="h100"), "hardware_config", ["'h100'", "nvidia_h100_80gb"]),
    (LM, _layer(model_id="gpt5"), "model_id", ["'gpt5'", "llama_3.3_70b"]),
    (LM, _layer(layer_type="mlp"), "layer_type", ["'mlp'", "'feedforward'"]),
    (LM, _layer(dtype="fp5"), "dtype", ["'fp5'", "'bf16'"]),
    (LM, _layer(batch_size="1"), "batch_size", ["'1'", "integer"]),
    (LM, _layer(batch_size=True), "batch_size", ["True", "integer"]),
    (LM, _layer(tensor_paralel=8), "tensor_paralel", ["not a known field"]),
    (LM, _layer(hardware_config=H100, tensor_parallel=16), "tensor_parallel", ["16", "8 devices"]),
    (LM, _layer(sequence_parallel=2), "sequence_parallel", ["2", "1 or tp (8)"]),
    (LM, _layer(hardware_config=H100, tensor_parallel=1, dtype="fp4"), "dtype", ["'fp4'", "'fp8'"]),
    (LM, {k: v for k, v in LAYER.items() if k != "seq_length"}, "seq_length", ["required"]),
    (SM, _system(batch_size=0), "batch_size", ["0", "greater than or equal to 1"]),
    (SM, _system(input_seq=200_000), "input_seq", ["200000", "131072"]),
    (SM, _system(**{"feedforward.tensor_parallel": 4}), "layers.feedforward.tensor_parallel", ["4", "8/1"]),
    (SM, _system(**{"norm.tensor_parallel": 2}), "layers.norm.tensor_parallel", ["2", "1 (replicated) or 8"]),
    (SM, _system(**{"feedforward.expert_parallel": 2, "feedforward.tensor_parallel": 4}),
     "layers.feedforward.expert_parallel", ["ep=2", "dense"]),
    (SM, _system(pipeline_parallel=16), "pipeline_parallel", ["16", "72", "pp=16"]),
    (SM, _system(kv_dtype="fp9"), "kv_dtype", ["'fp9'", "'fp8'"]),
    (SM, _system(serving="vllm_typo"), "serving", ["'vllm_typo'", "'fused'"]),
    (SM, _system(hardware_config=H100, **{"attention.dtype": "fp4", "feedforward.dtype": "fp4",
                                          "embedding.dtype": "fp4"}), "dtype", ["fp4", "fp8"]),
    (SM, _system(**{"attention.pipeline": 2}), "layers.attention.pipeline", ["not a known field"]),
    ("/config/batch-curve", {**{k: v for k, v in SYSTEM.items() if k != "batch_size"}, "batch_sizes": [1, 0]},
     "batch_sizes.1", ["0"]),
]


@pytest.mark.parametrize("route,body,field,words", BAD_REQUESTS, ids=[f"{r[0]}:{r[2]}" for r in BAD_REQUESTS])
def test_bad_requests_are_422_naming_field_value_and_choices(client: TestClient, route: str, body: Any,
                                                             field: str, words: list[str]) -> None:
    r = client.post(route, json=body)
    assert r.status_code == 422, r.text
    got = r.json()
    assert got["detail"][0]["field"] == field
    assert field in got["message"]
    for word in words:
        assert word in got["message"], got["message"]


@pytest.mark.parametrize("params", [{"model_id": "gpt5"}, {}])
def test_layers_route_rejects_unknown_or_missing_model(client: TestClient, params: dict[str, str]) -> None:
    r = client.get("/api/layers", params=params)
    assert r.status_code == 422 and "model_id" in r.json()["message"]
    if params:
        assert "llama_3.3_70b" in r.json()["message"]


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe\x00", b"[1, 2]", b""])
def test_malformed_bodies_are_422(client: TestClient, raw: bytes) -> None:
    r = client.post("/config/system-metrics", content=raw, headers=JSON_HEADERS)
    assert r.status_code == 422 and r.json()["message"]


def test_layer_counts_match_layer_metrics() -> None:
    """/api/layers' counts are the ones mantile.layer_metrics reports."""
    for model_id in ids("model"):
        for cat in layer_categories(load_model(model_id)):
            got = mantile.layer_metrics(model=model_id, hardware="nvidia_h100_80gb", layer_type=cat["name"])
            assert cat["count"] == got["count"]


# ---- no request produces a 500 -----------------------------------------------------------------------
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app())


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck),
          database=None)
def test_schema_fuzz_finds_no_server_error(case: schemathesis.Case) -> None:
    """Generated bodies (valid and invalid by the schema): never a 500, always a documented answer.
    Schema-valid bodies may still be rejected (an id with no such plan), so that check is off.
    POST /recommend searches for seconds (bounded by ``MAX_RECOMMEND_GROUPS``): it gets a minute."""
    timeout = 60 if case.path == "/recommend" else 10
    case.call_and_validate(excluded_checks=[positive_data_acceptance], timeout=timeout)


# ---- concurrency ----------------------------------------------------------------------------------
def _concurrent_bodies(n: int) -> list[tuple[str, dict[str, Any]]]:
    rng = random.Random(0)
    out: list[tuple[str, dict[str, Any]]] = []
    for i in range(n):
        tp = rng.choice([1, 2, 4, 8])
        if i % 4 == 3:
            out.append((LM, _layer(tensor_parallel=tp, batch_size=rng.choice([1, 8, 64]),
                                   layer_type=rng.choice(LAYER_TYPES), sequence_parallel=1)))
            continue
        body = _system(batch_size=rng.choice([1, 2, 16, 128]), input_seq=rng.choice([128, 1024]),
                       model_id=rng.choice(["llama_3.3_70b", "llama_3.1_8b", "tinyllama_1.1b"]),
                       **{"attention.tensor_parallel": tp, "feedforward.tensor_parallel": tp})
        out.append((SM, body))
    return out


def _expected(route: str, body: dict[str, Any]) -> dict[str, Any]:
    if route == LM:
        return mantile.layer_metrics(model=body["model_id"], hardware=body["hardware_config"],
                                     layer_type=body["layer_type"], batch_size=body["batch_size"],
                                     seq_length=body["seq_length"], tp=body["tensor_parallel"])
    row = _estimate(body)
    keys = ("ttft_ms", "tpot_ms", "memory_gb_per_device", "fits", "batch_size", "model_id")
    return {k: row[k] for k in keys}


@pytest.mark.slow
def test_hundreds_of_concurrent_requests_all_answered_correctly(server: str) -> None:
    requests = _concurrent_bodies(300)
    expected = [_expected(route, body) for route, body in requests]
    with httpx.Client(base_url=server, timeout=60.0,
                      limits=httpx.Limits(max_connections=32, max_keepalive_connections=32)) as http:
        with ThreadPoolExecutor(max_workers=32) as pool:
            responses = list(pool.map(lambda rb: http.post(rb[0], json=rb[1]), requests))
    assert [r.status_code for r in responses] == [200] * len(requests)
    for r, want in zip(responses, expected, strict=True):
        got = r.json()
        assert {k: got[k] for k in want} == want
