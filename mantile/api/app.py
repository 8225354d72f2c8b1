"""The stateless HTTP service of the product brief, and the web page it serves at ``/``.

``create_app()`` loads the catalog once; every route is a plain function of its request (no session,
no global state), run in FastAPI's thread pool. Routes only validate, call the Python API
(``mantile.estimate`` / ``mantile.layer_metrics``) or read the catalog, and reshape: see service.py.
OpenAPI docs: ``/docs`` (Swagger UI) and ``/openapi.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

import mantile
from mantile.api import errors, service
from mantile.api.catalog import Catalog, hardware_summary, layer_categories, model_summary
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

STATIC_DIR = Path(__file__).resolve().parent / "static"
BAD_REQUEST: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorResponse, "description": "unknown id, wrong type, out-of-range value, invalid plan"}}


def create_app(catalog: Catalog | None = None) -> FastAPI:
    """The FastAPI app; ``catalog`` defaults to everything under conf/, loaded now (once)."""
    cat = catalog or Catalog.load()
    app = FastAPI(title="Mantile", version=mantile.__version__,
                  description="Stateless LLM inference performance estimates: latency, throughput, memory. "
                              "Every request carries all of its context; every metric comes from the one "
                              "cost model behind mantile.estimate and mantile.layer_metrics.")
    app.state.catalog = cat
    errors.install(app)
    hardware = HardwareList.model_validate({"configs": sorted(cat.hardware), "summaries": [
        hardware_summary(i, hw) for i, hw in sorted(cat.hardware.items())]})
    models = ModelList.model_validate({"models": [model_summary(i, m) for i, m in sorted(cat.models.items())]})

    @app.get("/hardware", response_model=HardwareList, tags=["catalog"])
    def list_hardware() -> HardwareList:
        """Hardware ids (``configs``: the valid ``hardware_config`` values) and a summary of each."""
        return hardware

    @app.get("/models", response_model=ModelList, tags=["catalog"])
    def list_models() -> ModelList:
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
    def layer_metrics(req: LayerMetricsRequest) -> dict[str, Any]:
        """Cost of ONE instance of a layer type on one device (prefill of ``batch_size`` x
        ``seq_length`` tokens, or one decode step over a ``kv_length`` cache)."""
        return service.layer_metrics(cat, req)

    @app.post("/config/system-metrics", response_model=SystemMetricsResponse, responses=BAD_REQUEST,
              tags=["metrics"])
    def system_metrics(req: SystemMetricsRequest) -> dict[str, Any]:
        """TTFT, TPOT, throughput, memory per device and fits for the whole deployment, with the
        per-layer-type breakdown. An invalid plan is a 422; a plan that does not fit is a 200 with
        ``fits=false`` and a ``reason``."""
        return service.system_metrics(cat, req)

    @app.post("/config/batch-curve", response_model=BatchCurveResponse, responses=BAD_REQUEST,
              tags=["metrics"])
    def batch_curve(req: BatchCurveRequest) -> dict[str, Any]:
        """The system-metrics body without ``batch_size``, evaluated at each of ``batch_sizes``:
        the latency-vs-throughput curve of the web page."""
        return service.batch_curve(cat, req)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _document_ids(app, cat)
    return app


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

