"""Inside an estimate worker process (``limits.HeavyRoutes``): the catalog, and the routes' work."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from typing import Any

from mantile.api import disagg, service, studies
from mantile.api.catalog import Catalog
from mantile.engine.runner import exit_with_parent

_catalog: Catalog | None = None
ROUTES: dict[str, Callable[[Catalog, Any], dict[str, Any]]] = {
    "layer_metrics": service.layer_metrics,
    "batch_curve": service.batch_curve, "sweep": studies.sweep, "capacity": studies.capacity,
    "sla_search": studies.sla_search, "recommend": studies.recommend, "disagg_estimate": disagg.estimate}


WORKER_NICENESS = 10  # below the server process: its event loop answers first on a busy machine


def init(catalog: Catalog, server_pid: int) -> None:
    """Per worker: the catalog, a lower CPU priority, and an exit when the server process dies. The
    server's pid comes from the server: a worker whose server died before this ran has been reparented,
    and ``os.getppid()`` would name its new parent, which it would then wait for forever."""
    global _catalog
    _catalog = catalog
    exit_with_parent(server_pid)
    if hasattr(os, "nice"):
        os.nice(WORKER_NICENESS)
    gc.freeze()  # the catalog and the imported modules: out of the collector's generations (see app.create_app)


def ready() -> bool:
    return _catalog is not None


#: Routes that answer many bodies in one call (``limits.HeavyRoutes.run_batched``): per body, (True, its
#: answer) or (False, its error).
BATCHED: dict[str, Callable[[Catalog, list[Any]], list[tuple[bool, Any]]]] = {
    "system_metrics": service.system_metrics_many}


def call_many(route: str, reqs: list[Any]) -> list[tuple[bool, Any]]:
    """``service.<route>_many(catalog, reqs)``: the bodies waiting together, answered in one evaluation."""
    assert _catalog is not None, "pool.init runs first in every worker"
    return BATCHED[route](_catalog, reqs)


def call(route: str, req: Any) -> dict[str, Any]:
    """``service.<route>(catalog, req)``; a SpecError travels back to the server as itself."""
    assert _catalog is not None, "pool.init runs first in every worker"
    return ROUTES[route](_catalog, req)
