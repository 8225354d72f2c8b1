"""A small discrete-event simulation of a continuous-batching scheduler (the one that
``mantile/serving/queueing.py`` models in closed form), used only by tests.

``finite``: a benchmark run of exactly ``warmup + requests`` requests (clients stop resubmitting once
that many were sent; with warmup 0 the statistics cover the whole run, start-up burst and drain
included); otherwise clients resubmit until that many finished.

Per step: admit waiting requests FCFS while fewer than ``cap`` run; every running request past its
prefill decodes one token; the rest of the step's token ``budget`` goes to prefill chunks of running
requests in admission order. A step of d decode tokens and p prefill tokens takes ``step(d, p)``
seconds. A request's first token comes at the end of the step that finishes its prefill; it leaves
after ``O`` tokens (``outputs="exponential"``: after 1 + a whole number of tokens drawn exponential with
mean O - 1, so O on average; ``outputs="uniform"``: after 1 + a whole number drawn uniform from 0 to 2 (O - 1),
as SGLang's bench_serving draws a random dataset's lengths). Load: ``concurrency`` clients that resubmit at
once (closed loop) or Poisson arrivals at ``request_rate``.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class _Request:
    arrival: float
    prefill_left: int
    tokens_left: int
    first_token: float = -1.0
    token_times: list[float] = field(default_factory=list)


def simulate(step: Callable[[float, float], float], S: int, O: int, cap: int, budget: int,  # noqa: E741
             concurrency: int | None = None, request_rate: float | None = None, requests: int = 4000,
             warmup: int = 500, seed: int = 0, finite: bool = False, outputs: str = "fixed") -> dict[str, float]:
    rng = np.random.default_rng(seed)

    def length() -> int:  # a new request's output tokens
        if outputs == "uniform":
            return 1 + int(rng.integers(0, 2 * (O - 1) + 1))
        return O if outputs == "fixed" else 1 + int(round(rng.exponential(O - 1)))

    now, waiting, running, done = 0.0, deque[_Request](), list[_Request](), list[_Request]()
    arrivals: list[float] = []
    sent = 0
    if concurrency is not None:
        first = min(concurrency, requests + warmup) if finite else concurrency
        waiting.extend(_Request(0.0, S, length()) for _ in range(first))
        sent = first
    else:
        assert request_rate is not None
        t = 0.0
        for _ in range(requests + warmup):
            t += rng.exponential(1.0 / request_rate)
            heapq.heappush(arrivals, t)
    finished = 0
    while finished < requests + warmup:
        while arrivals and arrivals[0] <= now:
            waiting.append(_Request(heapq.heappop(arrivals), S, length()))
        while waiting and len(running) < cap:
            running.append(waiting.popleft())
        if not running:
            now = arrivals[0]
            continue
        decoding = [r for r in running if r.prefill_left == 0]
        left = max(budget - len(decoding), 0) if budget else 1 << 60
        chunks: list[tuple[_Request, int]] = []
        for r in running:
            if r.prefill_left and left > 0:
                take = min(r.prefill_left, left)
                chunks.append((r, take))
                left -= take
        now += step(float(len(decoding)), float(sum(c for _, c in chunks)))
        for r in decoding:
            r.token_times.append(now)
            r.tokens_left -= 1
        for r, take in chunks:
            r.prefill_left -= take
            if r.prefill_left == 0:
                r.first_token = now
                r.token_times.append(now)
                r.tokens_left -= 1
        for r in [r for r in running if r.tokens_left <= 0]:
            running.remove(r)
            done.append(r)
            finished += 1
            if concurrency is not None and (not finite or sent < requests + warmup):
                waiting.append(_Request(now, S, length()))
                sent += 1
    kept = done[warmup:]
    ttft = np.array([r.first_token - r.arrival for r in kept])
    tpot = np.array([(r.token_times[-1] - r.token_times[0]) / max(len(r.token_times) - 1, 1) for r in kept])
    # throughput: a finite run's requests over the run (first arrival to last token, as benchmark clients
    # count it); a steady state's over its completions (the warmup's last finish to the last one). Timing
    # the kept requests from the first one's arrival would count its whole latency (queueing included)
    # beside the steady rate: N / (requests + N) short of it in a closed loop of N clients (Little's law)
    start = done[warmup - 1].token_times[-1] if warmup > 0 else kept[0].arrival
    span = kept[-1].token_times[-1] - start
    return {"ttft_mean": float(ttft.mean()), "ttft_p50": float(np.percentile(ttft, 50)),
            "ttft_p99": float(np.percentile(ttft, 99)), "tpot_mean": float(tpot.mean()),
            "tpot_p50": float(np.percentile(tpot, 50)), "tpot_p99": float(np.percentile(tpot, 99)),
            "throughput_req_s": len(kept) / span}
