"""The web page at ``/`` in headless Chromium: it loads offline, shows the API's numbers, follows input
changes, shows errors inline, and draws the batch curve. Screenshot: tests/artifacts/web.png."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api_server import REPO, running_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = REPO / "tests" / "artifacts"
CARD_KEYS = ("ttft_ms", "tpot_ms", "throughput_tokens_per_s", "throughput_tokens_per_s_per_device",
             "tokens_per_s_per_user", "memory_gb_per_device", "usable_memory_gb_per_device",
             "weights_gb_per_device", "kv_cache_gb_per_device", "activation_gb_per_device", "num_devices",
             "max_batch_size")
TIMEOUT_MS = 20_000

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="the web test needs Debian's chromium at "
                       "/usr/bin/chromium (apt-get install -y chromium)"),
]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with running_server() as url:
        yield url


@pytest.fixture(scope="module")
def page(server: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1100})
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
        pg.on("request", lambda r: None if r.url.startswith((server, "data:"))
              else errors.append(f"offsite request: {r.url}"))
        pg.goto(server + "/")
        pg.wait_for_selector('body[data-state="ready"]', timeout=TIMEOUT_MS)
        yield pg
        browser.close()
        assert errors == [], errors


def _wait_ready(page: Any, **request: Any) -> dict[str, Any]:
    """Wait until the page shows results for a request with these top-level / attention values."""
    page.wait_for_function(
        """want => {
          if (document.body.dataset.state !== "ready") return false;
          const req = JSON.parse(document.getElementById("results").dataset.request || "{}");
          return Object.entries(want).every(([k, v]) =>
            (k === "tp" ? req.layers.attention.tensor_parallel : req[k]) === v);
        }""", arg=request, timeout=TIMEOUT_MS)
    return json.loads(page.get_attribute("#results", "data-request"))


def _shown(page: Any, selector: str) -> tuple[float, str]:
    return float(page.get_attribute(selector, "data-value")), page.inner_text(selector)


def _assert_page_equals_api(page: Any, server: str, body: dict[str, Any]) -> None:
    api = httpx.post(server + "/config/system-metrics", json=body).json()
    for key in CARD_KEYS:
        value, text = _shown(page, f"#{key}")
        assert value == api[key], key  # the raw number is the API's, bit for bit
        assert math.isclose(float(text.replace(",", "")), api[key], rel_tol=5e-3, abs_tol=1e-3), (key, text)
    assert page.get_attribute("#fits", "data-value") == str(api["fits"]).lower()
    phase = page.get_attribute("#results", "data-layer-phase")
    for kind in ("attention", "feedforward", "norm", "embedding"):
        row = f'#layer-table tr[data-layer="{kind}"]'
        assert _shown(page, f'{row} td[data-key="prefill_ms"]')[0] == api["layers"][kind]["prefill_ms"]
        assert _shown(page, f'{row} td[data-key="decode_ms"]')[0] == api["layers"][kind]["decode_ms"]
        layer = _layer_metrics(server, body, kind, phase)
        assert _shown(page, f'{row} td[data-key="latency_ms"]')[0] == layer["latency_ms"]
        assert _shown(page, f'{row} td[data-key="count"]')[0] == layer["count"]
    curve = httpx.post(server + "/config/batch-curve",
                       json={k: v for k, v in body.items() if k != "batch_size"}).json()["points"]
    shown = page.eval_on_selector_all("#chart circle", "cs => cs.map(c => Number(c.dataset.batchSize))")
    assert shown == [p["batch_size"] for p in curve] == [1, 2, 4, 8, 16, 32, 64, 128, 256]


def _layer_metrics(server: str, body: dict[str, Any], kind: str, phase: str) -> dict[str, Any]:
    layers = body["layers"]
    sp = max(layers["feedforward"]["sequence_parallel"], layers["norm"]["tensor_parallel"])
    req = {"model_id": body["model_id"], "hardware_config": body["hardware_config"], "layer_type": kind,
           "phase": phase, "batch_size": body["batch_size"], "seq_length": body["input_seq"],
           "dtype": body["dtype"],
           "tensor_parallel": layers["embedding" if kind == "embedding" else "attention"]["tensor_parallel"],
           "context_parallel": layers["attention"]["context_parallel"],
           "sequence_parallel": 1 if kind == "embedding" else sp}
    r = httpx.post(server + "/config/layer-metrics", json=req)
    assert r.status_code == 200, r.text
    return r.json()


def test_page_shows_the_apis_numbers_and_follows_inputs(page: Any, server: str) -> None:
    body = _wait_ready(page, model_id="llama_3.3_70b", hardware_config="nvidia_nvl72_rack", batch_size=1,
                       tp=8)
    assert body["input_seq"] == 2048 and body["output_seq"] == 128
    _assert_page_equals_api(page, server, body)
    assert page.is_hidden("#error")

    page.fill("#batch_size", "8")
    page.select_option("#attention_tp", "4")
    body = _wait_ready(page, batch_size=8, tp=4)
    assert body["layers"]["feedforward"]["tensor_parallel"] == 4
    _assert_page_equals_api(page, server, body)

    page.select_option("#model_id", "llama_3.1_8b")
    page.select_option("#hardware_config", "nvidia_h100_80gb")
    page.select_option("#layer_phase", "decode")
    body = _wait_ready(page, model_id="llama_3.1_8b", hardware_config="nvidia_h100_80gb", batch_size=8)
    _assert_page_equals_api(page, server, body)


def test_errors_are_shown_inline_and_clear(page: Any, server: str) -> None:
    page.select_option("#model_id", "llama_3.3_70b")
    page.fill("#input_seq", "200000")
    page.wait_for_selector('body[data-state="error"]', timeout=TIMEOUT_MS)
    message = page.inner_text("#error")
    assert "input_seq" in message and "200000" in message and "131072" in message
    assert "invalid" in (page.get_attribute("#input_seq", "class") or "")

    page.fill("#input_seq", "1024")
    body = _wait_ready(page, input_seq=1024, model_id="llama_3.3_70b")
    assert page.is_hidden("#error") and not page.query_selector_all(".invalid")
    _assert_page_equals_api(page, server, body)


def test_screenshot(page: Any) -> None:
    page.select_option("#hardware_config", "nvidia_nvl72_rack")
    page.select_option("#attention_tp", "8")
    page.fill("#batch_size", "16")
    page.select_option("#layer_phase", "prefill")
    _wait_ready(page, hardware_config="nvidia_nvl72_rack", tp=8, batch_size=16)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web.png"), full_page=True)
    assert (ARTIFACTS / "web.png").stat().st_size > 10_000
