"""HTTP API parity with the Python API: the study routes (/sweep, /capacity, /sla) answer what
``mantile.sweep`` and ``mantile.analysis`` answer, every estimate option is a body field, every error
status has the one error shape and names the request field, and /docs needs no network."""

from __future__ import annotations

import copy
import json
import re
import warnings
from collections.abc import Iterator
from typing import Any

import polars as pl
import pytest

import mantile
from mantile.analysis.capacity import capacity_table, ladder
from mantile.analysis.pareto import pareto_front
from mantile.analysis.sla import Sla, count_meeting, meeting
from mantile.api import create_app
from mantile.api.study_schemas import MAX_SWEEP_POINTS
from tests.api_server import BRIEF_SYSTEM_BODY

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

SYSTEM = json.loads(BRIEF_SYSTEM_BODY)
HARDWARE = ["nvidia_h100_80gb", "nvidia_b200_180gb", "amd_mi300x"]
GRID = {"model_id": "llama_3.1_8b", "hardware_config": HARDWARE, "input_seq": 1024, "output_seq": 128,
        "tensor_parallel": [1, 2, 4, 8]}
SWEEP_ARGS = {"model": "llama_3.1_8b", "hardware": HARDWARE, "input_seq": 1024, "output_seq": 128,
              "tp": [1, 2, 4, 8]}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app()) as c:
        yield c


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["hardware_id"], row["tp"], row["batch_size"])


def _same_rows(got: list[dict[str, Any]], want: pl.DataFrame) -> None:
    """Rows equal the Python API's, key by key (NaN -> null), in any order."""
    assert len(got) == want.height
    want_rows = {_key(r): r for r in want.to_dicts()}
    for row in got:
        ref = want_rows[_key(row)]
        for k, v in row.items():
            w = ref[k]
            assert v == (None if isinstance(w, float) and w != w else w), (k, v, w)


# ---- POST /sweep ------------------------------------------------------------------------------------
def test_sweep_rows_and_pareto_equal_the_python_api(client: TestClient) -> None:
    batches = [1, 4, 16, 64, 256]
    r = client.post("/sweep", json={**GRID, "batch_size": batches})
    assert r.status_code == 200, r.text
    got = r.json()
    df = mantile.sweep(**SWEEP_ARGS, batch_size=batches)
    assert got["points"] == 3 * 4 * 5 == df.height
    _same_rows(got["rows"], df)
    front = pareto_front(df, latency="tpot_ms", throughput="throughput_tokens_per_s_per_device")
    assert {_key(r) for r in got["pareto"]} == {_key(r) for r in front.to_dicts()}
    assert {r["hardware_id"] for r in got["pareto"]} == set(HARDWARE)
    # one point against mantile.estimate itself
    row = next(r for r in got["rows"] if _key(r) == ("nvidia_b200_180gb", 2, 16))
    est = mantile.estimate(model="llama_3.1_8b", hardware="nvidia_b200_180gb", batch_size=16, input_seq=1024,
                           output_seq=128, tp=2)
    assert row["tpot_ms"] == est["tpot_ms"] and row["throughput_tokens_per_s_per_device"] == \
        est["throughput_tokens_per_s_per_device"]


def test_sweep_fits_only_and_serving_options(client: TestClient) -> None:
    body = {**GRID, "model_id": "llama_3.3_70b", "batch_size": [1, 512], "fits_only": True,
            "batching": "continuous", "memory_reserve_fraction": 0.2}
    got = client.post("/sweep", json=body).json()
    assert got["rows"] and all(r["fits"] for r in got["rows"]) and len(got["rows"]) < got["points"]
    df = mantile.sweep(**{**SWEEP_ARGS, "model": "llama_3.3_70b"}, batch_size=[1, 512], batching="continuous",
                       memory_reserve_fraction=0.2)
    _same_rows(got["rows"], df.filter(pl.col("fits")))


def test_sweep_over_the_cap_is_422_naming_the_size(client: TestClient) -> None:
    batches = list(range(1, 1001))
    body = {**GRID, "batch_size": batches, "input_seq": [512, 1024]}  # 3 x 4 x 1000 x 2 = 24,000
    r = client.post("/sweep", json=body)
    assert r.status_code == 422
    got = r.json()
    assert got["detail"][0]["field"] == "batch_size"
    assert "24,000 points" in got["message"] and f"{MAX_SWEEP_POINTS:,}" in got["message"]


@pytest.mark.parametrize("patch,field", [({"tensor_parallel": [1, 0]}, "tensor_parallel.1"),
                                         ({"hardware_config": ["nvidia_h100_80gb", "h100"]}, "hardware_config"),
                                         ({"batching": "paged"}, "batching"),
                                         ({"batch_size": []}, "batch_size")])
def test_sweep_bad_values_name_the_field(client: TestClient, patch: dict[str, Any], field: str) -> None:
    r = client.post("/sweep", json={**GRID, "batch_size": 1, **patch})
    assert r.status_code == 422, r.text
    assert field in [d["field"] for d in r.json()["detail"]], r.json()


# ---- POST /capacity and /sla ------------------------------------------------------------------------
def test_capacity_equals_the_capacity_analysis(client: TestClient) -> None:
    r = client.post("/capacity", json={**GRID, "sla": {"tpot_ms": 25}, "max_batch_size": 1024})
    assert r.status_code == 200, r.text
    plans = r.json()["plans"]
    probe = mantile.sweep(**SWEEP_ARGS, batch_size=1)
    rungs = ladder(probe.filter(pl.col("valid"))["max_batch_size"].to_list(), 1024)
    table = capacity_table(mantile.sweep(**SWEEP_ARGS, batch_size=rungs).lazy(), Sla(tpot_ms=25))
    assert len(plans) == table.height == 12
    want = {(t["hardware_id"], t["tp"]): t for t in table.to_dicts()}
    for p in plans:
        t = want[(p["hardware_id"], p["tp"])]
        assert (p["max_batch_size"], p["sla_max_batch_size"], p["batch_limit"], p["limited_by"]) == \
            (t["max_batch_size"], t["sla_max_batch_size"], t["batch_limit"], t["limited_by"])
    limited = [p for p in plans if p["limited_by"].startswith("sla")]
    assert limited and all(p["tpot_ms"] <= 25 for p in limited)


def test_sla_search_ranks_the_points_meeting_the_targets(client: TestClient) -> None:
    batches = [1, 8, 64, 256]
    body = {**GRID, "batch_size": batches, "sla": {"tpot_ms": 8, "ttft_ms": 500}, "top": 3}
    got = client.post("/sla", json=body).json()
    df = mantile.sweep(**SWEEP_ARGS, batch_size=batches)
    sla = Sla(tpot_ms=8, ttft_ms=500)
    assert (got["meeting"], got["fitting"]) == count_meeting(df.lazy(), sla)
    top = meeting(df.lazy(), sla, top=3)
    assert [_key(r) for r in got["top"]] == [_key(r) for r in top.to_dicts()]
    assert all(r["tpot_ms"] <= 8 and r["ttft_ms"] <= 500 for r in got["top"])
    assert got["best_failing"] is not None and "over" in got["best_failing_misses"]


def test_sla_targets_are_validated(client: TestClient) -> None:
    r = client.post("/sla", json={**GRID, "batch_size": 1, "sla": {"tpot_ms": -1}})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "sla.tpot_ms"


# ---- every estimate option as a body field ----------------------------------------------------------
OPTIONS = [{"batching": "continuous"}, {"comm_overlap": True}, {"max_prefill_tokens": 512},
           {"max_num_batched_tokens": 512},
           {"memory_reserve_fraction": 0.3}, {"kv_dtype": "fp8"}, {"serving": "fused"}]


@pytest.mark.parametrize("option", OPTIONS, ids=[next(iter(o)) for o in OPTIONS])
def test_system_metrics_accepts_every_estimate_option(client: TestClient, option: dict[str, Any]) -> None:
    # on the plain pytorch profile, where each of these options moves a number (an engine profile sets its
    # batching and memory from its scheduler: vllm is continuous already and fills 0.9 of the memory)
    base = {"serving": "pytorch"}
    body = {**SYSTEM, "batch_size": 32, "pipeline_parallel": 2, "data_parallel": 2, **base, **option}
    r = client.post("/config/system-metrics", json=body)
    assert r.status_code == 200, r.text
    row = mantile.estimate(model=body["model_id"], hardware=body["hardware_config"], batch_size=32,
                           input_seq=2048, output_seq=128, pp=2, dp=2, layers=body["layers"], **{**base, **option})
    plain = mantile.estimate(model=body["model_id"], hardware=body["hardware_config"], batch_size=32,
                             input_seq=2048, output_seq=128, pp=2, dp=2, layers=body["layers"], **base)
    got = r.json()
    for k in ("ttft_ms", "tpot_ms", "memory_gb_per_device", "usable_memory_gb_per_device", "max_batch_size"):
        assert got[k] == row[k], k
    moved = ("ttft_ms", "tpot_ms", "usable_memory_gb_per_device", "memory_gb_per_device")
    assert any(got[k] != plain[k] for k in moved)  # the option reached the cost model


# ---- one error shape, request field names -------------------------------------------------------------
def _assert_error_shape(body: dict[str, Any]) -> None:
    assert set(body) == {"message", "detail"} and isinstance(body["message"], str) and body["message"]
    for item in body["detail"]:
        assert {"loc", "field", "input", "msg", "type"} <= set(item)


@pytest.mark.parametrize("method,path,status,field", [
    ("GET", "/no/such/route", 404, "path"), ("DELETE", "/config/system-metrics", 405, "method"),
    ("GET", "/sweep", 405, "method"), ("POST", "/config/system-metrics", 422, "batch_size")])
def test_every_error_status_has_the_one_shape(client: TestClient, method: str, path: str, status: int,
                                              field: str) -> None:
    r = client.request(method, path, json={k: v for k, v in SYSTEM.items() if k != "batch_size"})
    assert r.status_code == status
    _assert_error_shape(r.json())
    assert r.json()["detail"][0]["field"] == field
    if status == 405:
        assert r.headers["allow"] and r.headers["allow"] in r.json()["message"]


@pytest.mark.parametrize("patch,field,words", [
    ({"pipeline_parallel": 16}, "pipeline_parallel", ["16", "72", "tp=8", "pp=16"]),
    ({"data_parallel": 16}, "data_parallel", ["16", "72"]),
    ({"norm.tensor_parallel": 8, "feedforward.sequence_parallel": 1, "attention.tensor_parallel": 8},
     "layers.norm.tensor_parallel", []),
])
def test_plan_errors_name_the_request_field(client: TestClient, patch: dict[str, Any], field: str,
                                            words: list[str]) -> None:
    body = copy.deepcopy(SYSTEM)
    for k, v in patch.items():
        if "." in k:
            kind, f = k.split(".")
            body["layers"][kind][f] = v
        else:
            body[k] = v
    r = client.post("/config/system-metrics", json=body)
    if field == "layers.norm.tensor_parallel":  # a valid plan: sequence-parallel norms
        assert r.status_code == 200
        return
    assert r.status_code == 422
    got = r.json()
    assert got["detail"][0]["field"] == field and not isinstance(got["detail"][0]["input"], dict)
    for w in words:
        assert w in got["message"], got["message"]


# ---- offline docs -----------------------------------------------------------------------------------
@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_reference_only_local_assets_that_exist(client: TestClient, page: str) -> None:
    html = client.get(page)
    assert html.status_code == 200
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html.text)
    urls += re.findall(r"""url:\s*['"]([^'"]+)['"]""", html.text)
    assert urls and all(u.startswith("/") and not u.startswith("//") for u in urls), urls
    assert "http://" not in html.text and "https://" not in html.text
    for u in urls:
        assert client.get(u).status_code == 200, u


RECOMMEND = {"model_id": "llama_3.1_8b", "input_seq": 1024, "output_seq": 128, "request_rate": 6.0,
             "sla": {"ttft_ms": 400, "tpot_ms": 25}, "hardware_config": ["nvidia_h100_80gb"], "serving": ["vllm"],
             "dtype": ["bf16"], "tensor_parallel": [1, 2], "max_devices": 16}


def test_recommend_route_matches_the_python_api(client: TestClient) -> None:
    r = client.post("/recommend", json=RECOMMEND)
    assert r.status_code == 200, r.text
    body = r.json()
    rec = mantile.recommend("llama_3.1_8b", 1024, 128, 6.0, 400, 25, hardware=["nvidia_h100_80gb"], serving=["vllm"],
                            dtype=["bf16"], tp=[1, 2], max_devices=16)
    assert body["by_gpus"][0]["num_devices"] == rec.by_gpus["num_devices"][0]
    assert body["commands"]["fewest GPUs"][0].startswith("vllm serve ")
    assert all(row["ttft_p99_ms"] <= 400 and row["tpot_p99_ms"] <= 25 for row in body["by_gpus"])


def test_recommend_errors_name_the_field(client: TestClient) -> None:
    r = client.post("/recommend", json={**RECOMMEND, "hardware_config": ["nvidia_h999"]})
    assert r.status_code in (404, 422) and "nvidia_h999" in r.text
    r = client.post("/recommend", json={**RECOMMEND, "sla": {"ttft_ms": -1, "tpot_ms": 25}})
    assert r.status_code == 422 and "ttft_ms" in r.text


def test_recommend_refuses_a_search_too_large_before_any_work(client: TestClient) -> None:
    """Eight distinct dtypes over the whole catalog, three engines and tp 1-8: 21 x 3 x 8 x 4 = 2,016 plan
    groups, over MAX_RECOMMEND_GROUPS (1,024): a 422 that names the dtype list and the size, at once."""
    import time

    from mantile.api.studies import MAX_RECOMMEND_GROUPS
    from mantile.specs import ids

    body = {"model_id": "llama_3.1_8b", "input_seq": 512, "output_seq": 128, "request_rate": 5,
            "sla": {"ttft_ms": 1000, "tpot_ms": 50},
            "dtype": ["bf16", "fp16", "fp8", "fp4", "mxfp4", "w4a16", "fp32", "tf32"]}
    size = len(ids("hardware")) * 3 * 8 * 4
    assert size > MAX_RECOMMEND_GROUPS
    t0 = time.perf_counter()
    r = client.post("/recommend", json=body)
    assert time.perf_counter() - t0 < 5
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "dtype" and f"{size:,}" in r.text
