"""What one client may cost the server: body size, heavy-route concurrency, connections, timeouts.

Every limit has a safe default and an environment variable (``MANTILE_API_<NAME>``, e.g.
``MANTILE_API_MAX_BODY_BYTES=2097152``), which ``python -m mantile.api`` also sets from its flags, so
every worker process of a ``--workers N`` launch reads the same values. What uvicorn and Starlette
lack is written here, small (the body limit is FastAPI's ``max_body_size``: a 413 before the body is
held in memory): a bounded queue in front of the estimate routes (503 when full), HEAD answered wherever GET is, and a
header timeout with a connection cap at accept time (half-open connections cannot pile up).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import os
from collections.abc import AsyncIterator, Coroutine
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

ENV_PREFIX = "MANTILE_API_"



@dataclass(frozen=True)
class ServerLimits:
    """Per worker process; a field's environment variable is ``MANTILE_API_`` + its name in capitals."""

    max_body_bytes: int = 64 << 10  # a larger request body is a 413 (the largest valid body is ~2 kB)
    heavy_concurrency: int = 2  # estimate worker processes (each ~150 MB); the rest wait in a queue
    heavy_queue: int = 64  # estimate requests waiting beyond the running ones; more are a 503
    max_connections: int = 1024  # open connections; one more is closed at accept (uvicorn limit_concurrency)
    header_timeout_s: float = 10.0  # a connection that has not sent a complete request head by then is closed
    keep_alive_timeout_s: float = 5.0  # idle keep-alive connections are closed after this (uvicorn)
    max_header_bytes: int = 16 << 10  # request line + headers (GuardedHttpToolsProtocol: a 400 beyond it)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if not getattr(self, f.name) > 0:
                raise ValueError(f"{ENV_PREFIX}{f.name.upper()} = {getattr(self, f.name)!r}: must be positive")

    @classmethod
    def from_env(cls) -> ServerLimits:
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = os.environ.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                kind = float if f.type in (float, "float") else int
                try:
                    values[f.name] = kind(raw)
                except ValueError:
                    raise ValueError(f"{ENV_PREFIX}{f.name.upper()} = {raw!r}: must be a number") from None
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        return {ENV_PREFIX + f.name.upper(): str(getattr(self, f.name)) for f in dataclasses.fields(self)}


class HeadAsGet:
    """ASGI middleware: HEAD is served by the GET route, without the body (RFC 9110 9.3.2)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def no_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, no_body)


class HeavyRoutes:
    """The estimate routes run in ``concurrency`` worker processes (``mantile.api.pool``), never on
    the event loop and never in its process: an estimate can hold the GIL for 200 ms in one numpy or
    polars call, which in a thread would stall every other request. At most ``queue`` more requests
    wait; one beyond that is a 503 with Retry-After at once instead of a growing backlog. Workers run
    at a lower CPU priority (nice), so on a busy machine the event loop is scheduled first. A worker
    that dies is replaced (its request gets a 503)."""

    def __init__(self, concurrency: int, queue: int, catalog: Any) -> None:
        self.concurrency, self.capacity, self.catalog = concurrency, concurrency + queue, catalog
        self.admitted = 0
        self.executor: ProcessPoolExecutor | None = None
        self.started: asyncio.Future[None] | None = None
        #: batched routes' bodies waiting for a worker, and whether a dispatcher is taking them
        self.waiting: dict[str, list[tuple[Any, asyncio.Future[Any]]]] = {}
        self.dispatching: set[str] = set()
        self.free: asyncio.Semaphore | None = None
        self.tasks: set[asyncio.Future[None]] = set()

    def _pool(self) -> ProcessPoolExecutor:
        if self.executor is None:
            from mantile.api import pool

            self.executor = ProcessPoolExecutor(self.concurrency, mp_context=multiprocessing.get_context("spawn"),
                                                initializer=pool.init, initargs=(self.catalog, os.getpid()))
        return self.executor

    def _start(self) -> None:
        """Start every worker and wait until each has the catalog (about a second each). Runs in a
        thread: spawning blocks until the child has imported mantile."""
        from mantile.api import pool

        for f in [self._pool().submit(pool.ready) for _ in range(self.concurrency)]:
            f.result()

    async def start(self) -> None:
        if self.started is None:
            self.started = asyncio.ensure_future(asyncio.to_thread(self._start))
        await asyncio.shield(self.started)

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
            self.executor, self.started = None, None

    @contextlib.asynccontextmanager
    async def _admitted(self) -> AsyncIterator[None]:
        """One request counted against ``capacity`` while it runs or waits (a 503 at once beyond it), with
        the workers started."""
        if self.admitted >= self.capacity:
            raise HTTPException(503, f"busy: {self.capacity} estimate requests in progress; retry shortly "
                                     "(MANTILE_API_HEAVY_CONCURRENCY, MANTILE_API_HEAVY_QUEUE)",
                                headers={"Retry-After": "1"})
        self.admitted += 1
        try:
            await self.start()
            yield
        finally:
            self.admitted -= 1

    async def run(self, route: str, *args: Any) -> Any:
        from mantile.api import pool

        async with self._admitted():
            try:
                return await asyncio.get_running_loop().run_in_executor(self._pool(), pool.call, route, *args)
            except BrokenProcessPool:
                self.close()
                raise HTTPException(503, "an estimate worker died; retry", headers={"Retry-After": "1"}) from None

    async def run_batched(self, route: str, req: Any) -> Any:
        """``route`` for one body, answered together with the other bodies of that route waiting when a
        worker frees up (``pool.call_many``: one cost-model evaluation for all of them). Nothing waits on
        purpose: while the workers are busy, arrivals gather; a free worker takes all of them, up to
        ``BATCH_MAX``. Each body gets its own answer or its own error; admission and the 503 are per body,
        as in ``run``."""
        async with self._admitted():
            done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self.waiting.setdefault(route, []).append((req, done))
            if route not in self.dispatching:
                self.dispatching.add(route)
                self._spawn(self._dispatch(route))
            return await done

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` as a task the loop cannot drop: the loop keeps only weak references to tasks."""
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _dispatch(self, route: str) -> None:
        """Hand the route's waiting bodies to free workers, a batch per worker, until none wait."""
        if self.free is None:
            self.free = asyncio.Semaphore(self.concurrency)
        try:
            while self.waiting.get(route):
                await self.free.acquire()
                batch = self.waiting[route][:BATCH_MAX]
                del self.waiting[route][:BATCH_MAX]
                self._spawn(self._run_batch(route, batch))
        finally:
            self.dispatching.discard(route)

    async def _run_batch(self, route: str, batch: list[tuple[Any, asyncio.Future[Any]]]) -> None:
        from mantile.api import pool

        assert self.free is not None
        try:
            live = [(req, done) for req, done in batch if not done.done()]  # a client that left is skipped
            if not live:
                return
            answers = await asyncio.get_running_loop().run_in_executor(
                self._pool(), pool.call_many, route, [req for req, _ in live])
            for (_, done), (ok, value) in zip(live, answers, strict=True):
                if not done.done():
                    done.set_result(value) if ok else done.set_exception(value)
        except BrokenProcessPool:
            self.close()
            _fail(batch, HTTPException(503, "an estimate worker died; retry", headers={"Retry-After": "1"}))
        except Exception as e:  # noqa: BLE001 (a failure of the call is every waiting body's)
            _fail(batch, e)
        finally:
            self.free.release()


#: Most bodies one worker call answers (``HeavyRoutes.run_batched``): about 7 ms of evaluation for 64
#: system-metrics points of one model and hardware, against about 4 ms for one.
BATCH_MAX = 64


def _fail(batch: list[tuple[Any, asyncio.Future[Any]]], error: BaseException) -> None:
    for _, done in batch:
        if not done.done():
            done.set_exception(error)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (a C parser: about 0.3 ms less CPU a request than h11 on the
    benchmark's system-metrics bodies) with three guards it lacks: a connection over ``max_connections``
    is closed at accept (its file descriptor is freed at once); a connection that does not send a
    complete request head within ``header_timeout_s`` (first request, or the next one after a response)
    is closed (slowloris, half-open connections); and bytes of a request head beyond ``max_header_bytes``
    (request line and headers, up to the blank line) are a 400 and the connection closes, counted as they
    arrive, before httptools buffers a header that never ends.

    A connection has at most one header timer, cancelled as soon as the head it waits for is complete (or
    the connection goes). A timer left to run out after every response held its request's objects for the
    whole timeout: at 2,000 requests/s some 250,000 objects in the oldest GC generation, whose full
    collections then stalled the event loop for up to 150 ms every half second (the p99 latency)."""

    limits: ServerLimits | None = None
    head_bytes: int = 0  # bytes of the request head being received (-1 once it is complete)
    head_tail: bytes = b""  # the last 3 bytes received while a head was open: a terminator may straddle chunks
    header_timer: asyncio.TimerHandle | None = None  # closes the connection unless a complete head arrives first

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        if len(self.connections) > self._limits().max_connections:
            transport.close()
            return
        self._arm_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # a pipelined request whose head already came is being answered: no head is awaited yet
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        if self.head_bytes >= 0:
            seen = self.head_tail + data
            end = seen.find(b"\r\n\r\n")
            self.head_bytes += (len(data) if end < 0 else end + 4 - len(self.head_tail))
            if self.head_bytes > self._limits().max_header_bytes:
                self.send_400_response("Request head too large.")
                return
            if end < 0:
                self.head_tail = seen[-3:]
            else:  # the head is complete: its body and anything after it are not head bytes
                self.head_bytes, self.head_tail = -1, b""
                self._cancel_header_timer()
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.head_bytes, self.head_tail = 0, b""  # the next bytes are the next request's head

    @classmethod
    def _limits(cls) -> ServerLimits:
        if GuardedHttpToolsProtocol.limits is None:
            GuardedHttpToolsProtocol.limits = ServerLimits.from_env()
        return GuardedHttpToolsProtocol.limits

    def _arm_header_timer(self) -> None:
        """Close the connection unless a complete request head arrives within the timeout (the timer is
        cancelled when it does: ``data_received``)."""
        self._cancel_header_timer()
        self.header_timer = self.loop.call_later(self._limits().header_timeout_s, self._header_timeout)

    def _header_timeout(self) -> None:
        self.header_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def _cancel_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None
