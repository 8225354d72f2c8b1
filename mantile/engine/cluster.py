"""Where grid chunks run: joblib backends, from one process to a Dask or Ray cluster.

- ``loky`` (default), ``multiprocessing``, ``threading``: this machine, ``n_jobs`` workers.
- ``dask``: ``engine.address`` names an existing scheduler (``tcp://host:8786``); without it a
  ``LocalCluster`` is started for the sweep and closed after it. Needs ``dask[distributed]``.
- ``ray``: ``engine.address`` is passed to ``ray.init`` (``auto`` joins a running cluster; none starts
  a local one). Needs ``ray``; imported only when asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mantile.specs import SpecError

LOCAL_BACKENDS = ("loky", "threading", "multiprocessing", "sequential")
BACKENDS = (*LOCAL_BACKENDS, "dask", "ray")


def _missing(backend: str, extra: str, exc: ImportError) -> SpecError:
    return SpecError("engine", "backend", backend,
                     f"an installed {extra!r} (pip install 'mantile[{backend}]'); import failed: {exc}")


@contextmanager
def dask_client(address: str | None, n_jobs: int = -1) -> Iterator[Any]:
    """A ``dask.distributed.Client`` for joblib's dask backend: the cluster at ``address``, else a
    LocalCluster (``n_jobs`` single-threaded worker processes) that lives as long as the sweep."""
    try:
        from dask.distributed import Client, LocalCluster
        from joblib._dask import DaskDistributedBackend
    except ImportError as exc:
        raise _missing("dask", "dask[distributed]", exc) from exc
    from joblib import register_parallel_backend

    register_parallel_backend("dask", DaskDistributedBackend)
    logging.getLogger("distributed").setLevel(logging.WARNING)  # Hydra's log config shows INFO
    if address:
        with Client(address, set_as_default=True) as client:
            yield client
        return
    import os

    workers = (os.cpu_count() or 1) if n_jobs < 0 else n_jobs
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
    with cluster, Client(cluster, set_as_default=True) as client:
        yield client


@contextmanager
def ray_backend(address: str | None) -> Iterator[None]:
    try:
        import ray
        from ray.util.joblib import register_ray
    except ImportError as exc:
        raise _missing("ray", "ray", exc) from exc
    started = not ray.is_initialized()
    if started:
        ray.init(address=address or None, ignore_reinit_error=True, log_to_driver=False)
    register_ray()
    try:
        yield
    finally:
        if started:
            ray.shutdown()


@contextmanager
def backend_context(backend: str, address: str | None, n_jobs: int) -> Iterator[None]:
    """Set up (and tear down) what ``backend`` needs before joblib's ``Parallel`` can use it."""
    if backend == "dask":
        with dask_client(address, n_jobs):
            yield
    elif backend == "ray":
        with ray_backend(address):
            yield
    else:
        yield
