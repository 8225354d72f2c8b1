"""The web page at ``/`` in headless Chromium: it loads offline, shows the API's numbers (equal to
``mantile.estimate``'s), follows input changes, clears stale numbers on errors, keeps its state in the
URL (a copied link reproduces the view), compares configurations side by side, draws the Pareto chart
of one sweep over several systems with a legend, exports CSV and PNG, and fits a 390 px phone screen.
Screenshots: tests/artifacts/web-desktop.png and web-phone.png (git-ignored)."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import mantile
from tests.api_server import REPO, running_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = REPO / "tests" / "artifacts"
CARD_KEYS = ("ttft_ms", "tpot_ms", "throughput_tokens_per_s", "throughput_tokens_per_s_per_device",
             "tokens_per_s_per_user", "memory_gb_per_device", "usable_memory_gb_per_device",
             "weights_gb_per_device", "kv_cache_gb_per_device", "activation_gb_per_device",
             "cost_usd_per_million_tokens", "num_devices", "max_batch_size", "ttft_floor_ms", "tpot_floor_ms",
             "throughput_ceiling_tokens_per_s", "ttft_p10_ms", "ttft_p90_ms", "tpot_p10_ms", "tpot_p90_ms",
             "throughput_p10_tokens_per_s", "throughput_p90_tokens_per_s")
SERVING_KEYS = ("kv_dtype", "batching", "comm_overlap", "max_prefill_tokens", "max_num_batched_tokens",
                "memory_reserve_fraction",
                "spec_method", "spec_num_tokens", "spec_acceptance", "spec_draft_model", "prefix_cache_hit_rate")
TIMEOUT_MS = 30_000
DESKTOP = {"width": 1400, "height": 1100}
PHONE = {"width": 390, "height": 844}

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
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


class Page:
    """A fresh browser page that records page errors and any request off the server."""

    def __init__(self, browser: Any, server: str, viewport: dict[str, int] = DESKTOP) -> None:
        self.context = browser.new_context(viewport=viewport, accept_downloads=True)
        self.pg = self.context.new_page()
        self.errors: list[str] = []
        self.pg.on("pageerror", lambda e: self.errors.append(str(e)))
        self.pg.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url}"))
        self.pg.on("request", lambda r: None if r.url.startswith((server, "data:", "blob:"))
                   else self.errors.append(f"offsite request: {r.url}"))

    def open(self, url: str) -> Any:
        self.pg.goto(url)
        self.pg.wait_for_selector('body[data-state="ready"]', timeout=TIMEOUT_MS)
        return self.pg

    def close(self) -> None:
        self.context.close()
        assert self.errors == [], self.errors


@pytest.fixture(scope="module")
def page(browser: Any, server: str) -> Iterator[Any]:
    p = Page(browser, server)
    yield p.open(server + "/")
    p.close()


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


def _wait_pareto(page: Any) -> dict[str, Any]:
    page.wait_for_selector('#pareto[data-state="ready"]', timeout=TIMEOUT_MS)
    return json.loads(page.get_attribute("#pareto", "data-request"))


def _estimate(body: dict[str, Any]) -> dict[str, Any]:
    """The Python API's answer for a system-metrics body the page sent."""
    return mantile.estimate(model=body["model_id"], hardware=body["hardware_config"], batch_size=body["batch_size"],
                            input_seq=body["input_seq"], output_seq=body["output_seq"], dtype=body["dtype"],
                            pp=body["pipeline_parallel"], dp=body["data_parallel"], layers=body["layers"],
                            serving=body["serving"], **{k: body[k] for k in SERVING_KEYS if k in body})


def _value(page: Any, selector: str) -> float | None:
    raw = page.get_attribute(selector, "data-value")
    return None if raw in ("", None) else float(raw)


def _assert_page_equals_api(page: Any, server: str, body: dict[str, Any]) -> None:
    api = httpx.post(server + "/config/system-metrics", json=body).json()
    row = _estimate(body)
    for key in CARD_KEYS:
        assert _value(page, f"#{key}") == api[key] == row[key], key  # bit for bit, page = API = Python API
        text = page.inner_text(f"#{key}")
        if api[key] is not None:
            assert math.isclose(float(text.replace(",", "")), api[key], rel_tol=5e-3, abs_tol=1e-3), (key, text)
    assert page.get_attribute("#fits", "data-value") == str(api["fits"]).lower()
    phase = page.get_attribute("#results", "data-layer-phase")
    for kind in ("attention", "feedforward", "norm", "embedding"):
        tr = f'#layer-table tr[data-layer="{kind}"]'
        assert _value(page, f'{tr} td[data-key="prefill_ms"]') == api["layers"][kind]["prefill_ms"]
        assert _value(page, f'{tr} td[data-key="decode_ms"]') == row[f"decode_{kind}_ms"]
        layer = _layer_metrics(server, body, kind, phase)
        assert _value(page, f'{tr} td[data-key="latency_ms"]') == layer["latency_ms"]
        assert _value(page, f'{tr} td[data-key="count"]') == layer["count"]
    curve = httpx.post(server + "/config/batch-curve",
                       json={k: v for k, v in body.items() if k != "batch_size"}).json()["points"]
    shown = page.eval_on_selector_all("#chart circle", "cs => cs.map(c => Number(c.dataset.batchSize))")
    assert shown == [p["batch_size"] for p in curve] == [1, 2, 4, 8, 16, 32, 64, 128, 256]


def _layer_metrics(server: str, body: dict[str, Any], kind: str, phase: str) -> dict[str, Any]:
    layers = body["layers"]
    sp = max(layers["feedforward"]["sequence_parallel"], layers["norm"]["tensor_parallel"])
    req = {"model_id": body["model_id"], "hardware_config": body["hardware_config"], "layer_type": kind,
           "phase": phase, "batch_size": body["batch_size"], "seq_length": body["input_seq"],
           "dtype": body["dtype"], "serving": body["serving"],
           "tensor_parallel": layers["embedding" if kind == "embedding" else "attention"]["tensor_parallel"],
           "context_parallel": layers["attention"]["context_parallel"],
           "sequence_parallel": 1 if kind == "embedding" else sp}
    if "kv_dtype" in body:
        req["kv_dtype"] = body["kv_dtype"]
    r = httpx.post(server + "/config/layer-metrics", json=req)
    assert r.status_code == 200, r.text
    return r.json()


# ---- the configuration being edited ------------------------------------------------------------------
def test_page_shows_the_apis_numbers_and_follows_inputs(page: Any, server: str) -> None:
    body = _wait_ready(page, model_id="llama_3.3_70b", hardware_config="nvidia_nvl72_rack", batch_size=1,
                       tp=8)
    assert body["input_seq"] == 2048 and body["output_seq"] == 128 and body["serving"] == "pytorch"
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
    page.select_option("#pipeline_parallel", "2")
    page.select_option("#serving", "fused")
    page.select_option("#batching", "continuous")
    page.select_option("#kv_dtype", "fp8")
    page.fill("#memory_reserve_fraction", "0.2")
    page.fill("#max_num_batched_tokens", "1024")
    body = _wait_ready(page, model_id="llama_3.1_8b", hardware_config="nvidia_h100_80gb", batch_size=8,
                       pipeline_parallel=2, memory_reserve_fraction=0.2, max_num_batched_tokens=1024)
    assert (body["serving"], body["batching"], body["kv_dtype"]) == ("fused", "continuous", "fp8")
    _assert_page_equals_api(page, server, body)


def test_speculative_decoding_and_prefix_cache_controls(page: Any, server: str) -> None:
    page.select_option("#spec_method", "eagle")
    page.fill("#spec_num_tokens", "3")
    page.fill("#prefix_cache_hit_rate", "0.5")
    body = _wait_ready(page, spec_method="eagle", spec_num_tokens=3, prefix_cache_hit_rate=0.5)
    _assert_page_equals_api(page, server, body)
    page.select_option("#spec_method", "none")
    page.fill("#prefix_cache_hit_rate", "")
    page.wait_for_function(
        """() => document.body.dataset.state === "ready" &&
          !("spec_method" in JSON.parse(document.getElementById("results").dataset.request || "{}"))""",
        timeout=TIMEOUT_MS)


def test_errors_clear_stale_numbers_and_recover(page: Any, server: str) -> None:
    page.select_option("#model_id", "llama_3.3_70b")
    page.fill("#input_seq", "200000")
    page.wait_for_selector('body[data-state="error"]', timeout=TIMEOUT_MS)
    message = page.inner_text("#error")
    assert "input_seq" in message and "200000" in message and "131072" in message
    assert "invalid" in (page.get_attribute("#input_seq", "class") or "")
    for key in CARD_KEYS:  # nothing of the previous configuration stays on screen
        assert page.inner_text(f"#{key}") == "–" and _value(page, f"#{key}") is None, key
    assert page.query_selector_all("#layer-table tbody tr") == [] and page.query_selector_all("#chart circle") == []

    page.fill("#input_seq", "1024")
    body = _wait_ready(page, input_seq=1024, model_id="llama_3.3_70b")
    assert page.is_hidden("#error") and not page.query_selector_all("#controls .invalid")
    _assert_page_equals_api(page, server, body)


def test_tinyllama_defaults_fit_its_context(browser: Any, server: str) -> None:
    """The brief's own example model has a 2,048-token context: choosing it keeps the prompt inside."""
    p = Page(browser, server)
    page = p.open(server + "/")
    page.select_option("#model_id", "tinyllama_1.1b")
    body = _wait_ready(page, model_id="tinyllama_1.1b")
    assert body["input_seq"] + body["output_seq"] <= 2048 and body["output_seq"] == 128
    assert page.is_hidden("#error")
    _assert_page_equals_api(page, server, body)
    p.close()


# ---- comparison, link, Pareto, exports, phone ---------------------------------------------------------
def _compare_column(page: Any, col: int) -> dict[str, float | None]:
    cells = page.query_selector_all(f'#compare-table td[data-col="{col}"][data-key]')
    return {c.get_attribute("data-key"): c.get_attribute("data-value") for c in cells}


def _set_up_comparison(page: Any) -> list[dict[str, Any]]:
    page.select_option("#model_id", "llama_3.1_8b")
    page.select_option("#hardware_config", "nvidia_h100_80gb")
    page.select_option("#attention_tp", "2")
    page.fill("#batch_size", "16")
    page.fill("#sla_tpot_ms", "12")
    first = _wait_ready(page, model_id="llama_3.1_8b", tp=2, batch_size=16)
    page.click("#pin")
    page.wait_for_selector('#compare[data-state="ready"] td[data-col="0"]', timeout=TIMEOUT_MS)
    page.select_option("#attention_tp", "8")
    page.select_option("#hardware_config", "nvidia_h200_141gb")
    second = _wait_ready(page, tp=8, hardware_config="nvidia_h200_141gb")
    page.click("#pin")
    page.wait_for_selector('#compare[data-state="ready"] td[data-col="1"]', timeout=TIMEOUT_MS)
    return [first, second]


def _assert_comparison(page: Any, bodies: list[dict[str, Any]]) -> None:
    for col, body in enumerate(bodies):
        shown, row = _compare_column(page, col), _estimate(body)
        for key in ("ttft_ms", "tpot_ms", "throughput_tokens_per_s_per_device", "tokens_per_s_per_user",
                    "memory_gb_per_device", "cost_usd_per_million_tokens"):
            assert float(shown[key]) == row[key], (col, key)
        assert shown["meets_sla"] == str(row["fits"] and row["tpot_ms"] <= 12).lower()
    diff = page.eval_on_selector_all("#compare-table tr.diff th", "ths => ths.map(t => t.textContent)")
    assert "hardware" in diff and "tp · cp · pp · dp" in diff and "model" not in diff


def test_link_reproduces_the_view_with_two_configurations_side_by_side(browser: Any, server: str) -> None:
    p = Page(browser, server)
    page = p.open(server + "/")
    bodies = _set_up_comparison(page)
    _assert_comparison(page, bodies)
    page.uncheck('#pareto-hardware input[value="amd_mi300x"]')
    page.check('#pareto-hardware input[value="nvidia_a100_80gb"]')
    page.select_option("#chart_y", "ttft_ms")
    _wait_pareto(page)
    link = page.url
    assert "cmp=" in link and "hw=" in link and "sla_tpot_ms=12" in link

    q = Page(browser, server)
    again = q.open(link)
    assert _wait_ready(again, tp=8, hardware_config="nvidia_h200_141gb") == bodies[1]
    again.wait_for_selector('#compare[data-state="ready"] td[data-col="1"]', timeout=TIMEOUT_MS)
    _assert_comparison(again, bodies)
    assert _wait_pareto(again) == _wait_pareto(page)
    assert again.input_value("#chart_y") == "ttft_ms" and again.input_value("#sla_tpot_ms") == "12"
    assert again.url == link
    again.click('#compare-table button[data-remove="0"]')
    assert len(_compare_column(again, 1)) == 0 and "cmp=" in again.url
    q.close()
    p.close()


def test_pareto_chart_shows_several_systems_with_a_legend(page: Any, server: str) -> None:
    body = _wait_pareto(page)
    assert len(body["hardware_config"]) >= 3
    legend = page.eval_on_selector_all("#pareto-chart .legend-item", "gs => gs.map(g => g.dataset.series)")
    assert legend == body["hardware_config"]
    api = httpx.post(server + "/sweep", json={**body, "fits_only": True}).json()
    front = page.eval_on_selector_all('#pareto-chart circle[data-front="1"]', """cs => cs.map(c =>
        [c.dataset.hardware, Number(c.dataset.tp), Number(c.dataset.batch), c.getAttribute("fill")])""")
    assert sorted(f[:3] for f in front) == sorted([r["hardware_id"], r["tp"], r["batch_size"]] for r in api["pareto"])
    colours = {hw: {f[3] for f in front if f[0] == hw} for hw in body["hardware_config"]}
    assert all(len(c) == 1 for c in colours.values()) and len({c.pop() for c in colours.values()}) == len(colours)
    hw, tp, batch = front[0][:3]
    row = mantile.estimate(model=body["model_id"], hardware=hw, batch_size=batch, input_seq=body["input_seq"],
                           output_seq=body["output_seq"], tp=tp, dtype=body["dtype"], serving=body["serving"],
                           **{k: body[k] for k in SERVING_KEYS if k in body})
    api_row = next(r for r in api["pareto"] if (r["hardware_id"], r["tp"], r["batch_size"]) == (hw, tp, batch))
    assert api_row["throughput_tokens_per_s_per_device"] == row["throughput_tokens_per_s_per_device"]
    assert api_row["tokens_per_s_per_user"] == row["tokens_per_s_per_user"]
    top = page.eval_on_selector_all('#sla-table td[data-key="throughput_tokens_per_s_per_device"]',
                                    "tds => tds.map(t => Number(t.dataset.value))")
    assert top and top == sorted(top, reverse=True)


def test_exports_csv_and_png(browser: Any, server: str) -> None:
    p = Page(browser, server)
    page = p.open(server + "/")
    bodies = _set_up_comparison(page)
    with page.expect_download() as dl:
        page.click("#export-compare")
    rows = list(csv.DictReader(io.StringIO(Path(dl.value.path()).read_text())))
    assert [r["hardware_config"] for r in rows] == ["nvidia_h100_80gb", "nvidia_h200_141gb"]
    assert [float(r["tpot_ms"]) for r in rows] == [_estimate(b)["tpot_ms"] for b in bodies]
    _wait_pareto(page)
    with page.expect_download() as dl:
        page.click("#export-pareto-csv")
    sweep = list(csv.DictReader(io.StringIO(Path(dl.value.path()).read_text())))
    assert sweep and {"hardware_id", "tp", "batch_size", "tokens_per_s_per_user"} <= set(sweep[0])
    with page.expect_download() as dl:
        page.click("#export-pareto-png")
    png = Path(dl.value.path()).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "pareto.png").write_bytes(png)
    p.close()


def _no_sideways_scroll_and_readable_charts(page: Any, min_font_px: float) -> None:
    width = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert width[0] <= width[1], f"page scrolls sideways: {width}"
    for chart in ("#chart", "#pareto-chart"):
        sizes = page.eval_on_selector_all(f"{chart} svg text", "ts => ts.map(t => t.getBoundingClientRect().height)")
        assert sizes and min(sizes) >= min_font_px, (chart, min(sizes))


def test_desktop_and_phone_layouts(browser: Any, server: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    p = Page(browser, server)
    page = p.open(server + "/")
    _set_up_comparison(page)
    _wait_pareto(page)
    link = page.url
    _no_sideways_scroll_and_readable_charts(page, 11)
    page.screenshot(path=str(ARTIFACTS / "web-desktop.png"), full_page=True)
    p.close()

    phone = Page(browser, server, PHONE)
    small = phone.open(link)
    _wait_pareto(small)
    small.wait_for_selector('#compare[data-state="ready"] td[data-col="1"]', timeout=TIMEOUT_MS)
    _no_sideways_scroll_and_readable_charts(small, 11)
    small.screenshot(path=str(ARTIFACTS / "web-phone.png"), full_page=True)
    phone.close()
    for name in ("web-desktop.png", "web-phone.png"):
        assert (ARTIFACTS / name).stat().st_size > 20_000


def test_docs_render_with_the_network_off(browser: Any, server: str) -> None:
    context = browser.new_context()
    offsite: list[str] = []

    def only_local(route: Any) -> None:
        if route.request.url.startswith(server):
            route.continue_()
        else:
            offsite.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    page = context.new_page()
    page.goto(server + "/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=TIMEOUT_MS)
    assert "Mantile" in page.inner_text(".swagger-ui .info .title")
    paths = page.eval_on_selector_all(".opblock-summary-path", "els => els.map(e => e.dataset.path)")
    assert {"/config/system-metrics", "/sweep", "/capacity", "/sla"} <= set(paths)
    assert offsite == []
    context.close()


def test_recommend_panel_shows_the_apis_best_and_a_launch_command(browser: Any, server: str) -> None:
    p = Page(browser, server)
    page = p.open(server + "/?hw=nvidia_h100_80gb")
    page.fill("#rec_rate", "2")
    for engine in ("sglang", "trtllm"):
        page.uncheck(f'#rec_engines input[value="{engine}"]')
    page.click("#rec_run")
    page.wait_for_selector('#recommend[data-state="ready"]', timeout=4 * TIMEOUT_MS)
    gpus = page.eval_on_selector_all('#rec-table td[data-key="num_devices"]',
                                     "tds => tds.map(t => Number(t.dataset.value))")
    body = {"model_id": page.input_value("#model_id"), "input_seq": int(page.input_value("#input_seq")),
            "output_seq": int(page.input_value("#output_seq")), "request_rate": 2,
            "sla": {"ttft_ms": 1000, "tpot_ms": 50}, "hardware_config": ["nvidia_h100_80gb"], "serving": ["vllm"]}
    api = httpx.post(server + "/recommend", json=body, timeout=300).json()
    assert gpus and gpus[0] == api["by_gpus"][0]["num_devices"] and gpus == sorted(gpus)
    assert page.text_content("#rec-commands").startswith("vllm serve ")
    p.close()


def test_disagg_panel_shows_the_apis_row(browser: Any, server: str) -> None:
    p = Page(browser, server)
    page = p.open(server + "/")
    page.click("#dis_run")
    page.wait_for_selector('#disagg[data-state="ready"]', timeout=TIMEOUT_MS)
    shown = dict(page.eval_on_selector_all("#dis-table td[data-key]", "tds => tds.map(t => [t.dataset.key, "
                                                                       "t.dataset.value])"))
    side = {"dtype": page.input_value("#dtype") or "auto", "serving": page.input_value("#serving")}
    body = {"model_id": page.input_value("#model_id"), "hardware_config": page.input_value("#hardware_config"),
            "input_seq": int(page.input_value("#input_seq")), "output_seq": int(page.input_value("#output_seq")),
            "concurrency": 64, "prefill": {**side, "tensor_parallel": 2, "instances": 2},
            "decode": {**side, "tensor_parallel": 4, "instances": 1}}
    api = httpx.post(server + "/disagg/estimate", json=body, timeout=60).json()
    assert float(shown["ttft_ms"]) == pytest.approx(api["ttft_ms"]) and float(shown["num_devices"]) == 8
    assert shown["kv_link"] == api["kv_link"] and p.errors == []
    p.close()
