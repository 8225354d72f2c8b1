"""The stateless HTTP service of the product brief, and the web page it serves at ``/``.

``create_app()`` loads the catalog once; every route is a plain function of its request (no session,
no global state). Catalog routes answer from the event loop (prebuilt answers, no blocking); the
estimate and study routes run in a bounded pool of worker processes (``limits.HeavyRoutes``), so they
never hold up the loop; bodies over ``ServerLimits.max_body_bytes`` are a 413 (limits.py), and HEAD is
answered wherever GET is. Routes only validate, call the Python API
(``mantile.estimate`` / ``mantile.layer_metrics``) or read the catalog, and reshape: see service.py.
Study routes (``/sweep``, ``/capacity``, ``/sla``) are registered by ``add_study_routes``;
``POST /disagg/estimate`` (``mantile.estimate_disagg``) is in disagg.py.
OpenAPI docs: ``/docs`` (Swagger UI) and ``/redoc``, served with their assets from this server
(``add_offline_docs``), and ``/openapi.json``.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

import mantile
from mantile.api import errors
from mantile.api.catalog import Catalog, hardware_summary, layer_categories, model_summary
from mantile.api.disagg import DisaggRequest, DisaggResponse
from mantile.api.limits import HeadAsGet, HeavyRoutes, ServerLimits
from mantile.api.schemas import (
    BatchCurveRequest,
    BatchCurveResponse,
    ErrorResponse,
    HardwareList,
    LayerList,
    LayerMetricsRequest,
    LayerMetricsResponse,
    ModelList,
    SystemMetricsRequest,
    SystemMetricsResponse,
)
from mantile.api.study_schemas import (
    CapacityRequest,
    CapacityResponse,
    RecommendRequest,
    RecommendResponse,
    SlaRequest,
    SlaResponse,
    SweepRequest,
    SweepResponse,
)

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Swagger UI and ReDoc assets, shipped by the fastapi-offline package (no CDN).
DOCS_ASSETS_DIR = Path(str(files("fastapi_offline") / "static"))
DOCS_ASSETS_URL = "/static/docs"
BAD_REQUEST: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorResponse, "description": "unknown id, wrong type, out-of-range value, invalid plan"}}


def create_app(catalog: Catalog | None = None, limits: ServerLimits | None = None) -> FastAPI:
    """The FastAPI app; ``catalog`` defaults to everything under conf/, loaded now (once); ``limits``
    to ``ServerLimits.from_env()``."""
    cat = catalog or Catalog.load()
    limits = limits or ServerLimits.from_env()
    heavy = HeavyRoutes(limits.heavy_concurrency, limits.heavy_queue, cat)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await heavy.start()
        yield
        heavy.close()

    app = FastAPI(lifespan=lifespan, max_body_size=limits.max_body_bytes, title="Mantile",
                  version=mantile.__version__,
                  description="Stateless LLM inference performance estimates: latency, throughput, memory. "
                              "Every request carries all of its context; every metric comes from the one "
                              "cost model behind mantile.estimate and mantile.layer_metrics.",
                  docs_url=None, redoc_url=None)
    app.state.catalog = cat
    app.state.limits = limits
    errors.install(app)
    app.add_middleware(HeadAsGet)
    hardware = HardwareList.model_validate({"configs": sorted(cat.hardware), "summaries": [
        hardware_summary(i, hw) for i, hw in sorted(cat.hardware.items())]})
    models = ModelList.model_validate({"models": [model_summary(i, m) for i, m in sorted(cat.models.items())]})

    @app.get("/hardware", response_model=HardwareList, tags=["catalog"])
    async def list_hardware() -> HardwareList:
        """Hardware ids (``configs``: the valid ``hardware_config`` values) and a summary of each."""
        return hardware

    @app.get("/models", response_model=ModelList, tags=["catalog"])
    async def list_models() -> ModelList:
        """Models (``model_id`` is the valid ``model_id`` value) with their architecture numbers."""
        return models

    @app.get("/api/layers", response_model=LayerList, responses=BAD_REQUEST, tags=["catalog"])
    def list_layers(model_id: str = Query(description="a model id from GET /models",
                                          examples=["llama_3.3_70b"])) -> dict[str, Any]:
        """Layer categories of a model: attention, feedforward, norm, embedding, each with its
        ``count``, ``specs`` and ``available_parallelism``."""
        return {"model_id": model_id, "layers": layer_categories(cat.model(model_id, where="query"))}

    @app.post("/config/layer-metrics", response_model=LayerMetricsResponse, responses=BAD_REQUEST,
              tags=["metrics"])
    async def layer_metrics(req: LayerMetricsRequest) -> dict[str, Any]:
        """Cost of ONE instance of a layer type on one device (prefill of ``batch_size`` x
        ``seq_length`` tokens, or one decode step over a ``kv_length`` cache)."""
        return await heavy.run("layer_metrics", req)

    @app.post("/config/system-metrics", response_model=SystemMetricsResponse, responses=BAD_REQUEST,
              tags=["metrics"])
    async def system_metrics(req: SystemMetricsRequest) -> Response:
        """TTFT, TPOT, throughput, memory per device and fits for the whole deployment, with the
        per-layer-type breakdown. An invalid plan is a 422; a plan that does not fit is a 200 with
        ``fits=false`` and a ``reason``."""
        # the estimate worker validated and encoded the answer as ``SystemMetricsResponse`` JSON
        return Response(await heavy.run_batched("system_metrics", req), media_type="application/json")

    @app.post("/config/batch-curve", response_model=BatchCurveResponse, responses=BAD_REQUEST,
              tags=["metrics"])
    async def batch_curve(req: BatchCurveRequest) -> dict[str, Any]:
        """The system-metrics body without ``batch_size``, evaluated at each of ``batch_sizes``:
        the latency-vs-throughput curve of the web page."""
        return await heavy.run("batch_curve", req)

    @app.post("/disagg/estimate", response_model=DisaggResponse, responses=BAD_REQUEST, tags=["metrics"])
    async def disagg_estimate(req: DisaggRequest) -> dict[str, Any]:
        """A disaggregated deployment: ``prefill.instances`` prefill and ``decode.instances`` decode
        instances, each side with its own hardware, engine and plan, the KV cache moving between them
        (``mantile.estimate_disagg``); ``ratio=auto`` chooses the instances. TTFT includes the transfer;
        throughput per device counts both sides."""
        return await heavy.run("disagg_estimate", req)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    add_study_routes(app, heavy)
    add_offline_docs(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _document_ids(app, cat)
    # the catalog and the app's objects live as long as the process: out of the garbage collector's
    # generations, so that its full collections (every few thousand requests) do not walk them
    gc.freeze()
    return app


def add_study_routes(app: FastAPI, heavy: HeavyRoutes) -> None:
    """``POST /sweep``, ``/capacity`` and ``/sla``: grids of points through ``mantile.sweep`` (studies.py)."""

    @app.post("/sweep", response_model=SweepResponse, responses=BAD_REQUEST, tags=["studies"])
    async def sweep(req: SweepRequest) -> dict[str, Any]:
        """Cross every list of the body (at most 20,000 points) and return the rows and, per model and
        hardware, the Pareto front of ``pareto_latency`` vs tokens/s per device."""
        return await heavy.run("sweep", req)

    @app.post("/capacity", response_model=CapacityResponse, responses=BAD_REQUEST, tags=["studies"])
    async def capacity(req: CapacityRequest) -> dict[str, Any]:
        """Per plan of the grid: the largest batch that fits in memory, the largest that meets ``sla``,
        which one limits, and throughput and latency at that batch."""
        return await heavy.run("capacity", req)

    @app.post("/sla", response_model=SlaResponse, responses=BAD_REQUEST, tags=["studies"])
    async def sla(req: SlaRequest) -> dict[str, Any]:
        """The grid's points that fit and meet every ``sla`` target, best first by ``rank_by``; and the
        fitting point that misses the targets by the least."""
        return await heavy.run("sla_search", req)

    @app.post("/recommend", response_model=RecommendResponse, responses=BAD_REQUEST, tags=["studies"])
    async def recommend(req: RecommendRequest) -> dict[str, Any]:
        """The cheapest deployments serving ``request_rate`` requests/s under the ``sla`` targets: ranked by
        GPUs, dollars per hour and energy, the Pareto front and launch commands (``mantile.recommend``)."""
        return await heavy.run("recommend", req)


def add_offline_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` with their scripts, styles and icon served from
    ``DOCS_ASSETS_URL``, so the docs render without a network."""
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=DOCS_ASSETS_DIR), name="docs-assets")
    icon = f"{DOCS_ASSETS_URL}/favicon.png"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - API docs",
                                   swagger_js_url=f"{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{DOCS_ASSETS_URL}/swagger-ui.css", swagger_favicon_url=icon,
                                   oauth2_redirect_url="/docs/oauth2-redirect")

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title=f"{app.title} - API docs",
                              redoc_js_url=f"{DOCS_ASSETS_URL}/redoc.standalone.js", redoc_favicon_url=icon,
                              with_google_fonts=False)


def _document_ids(app: FastAPI, cat: Catalog) -> None:
    """List the catalog's ids as ``enum`` in the OpenAPI schema (docs and schema-driven clients);
    requests are still checked against the catalog, with errors that name the valid ids."""
    choices = {"model_id": sorted(cat.models), "hardware_config": sorted(cat.hardware),
               "serving": list(cat.servings)}
    make = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = make()
            for component in schema.get("components", {}).get("schemas", {}).values():
                for name, prop in component.get("properties", {}).items():
                    if name in choices and component.get("title", "").endswith("Request"):
                        prop["enum"] = choices[name]
            for param in schema["paths"]["/api/layers"]["get"].get("parameters", []):
                if param["name"] == "model_id":
                    param["schema"]["enum"] = choices["model_id"]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

