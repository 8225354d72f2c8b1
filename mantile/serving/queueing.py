"""Queueing of an engine's continuous-batching scheduler, in closed form (no event loop in the sweep).

The scheduler (vLLM, SGLang and TensorRT-LLM all work this way by default): up to ``cap`` sequences
run; every step decodes one token for each running sequence that finished its prefill and fills the
rest of the step's token ``budget`` with prefill tokens of waiting prompts, first come first served,
chunking prompts longer than what is left. ``step(decode_seqs, prefill_tokens) -> seconds`` is the
step time (vectorized; the cost model's mixed forward pass plus host time).

With B sequences running, prompts of S tokens and O output tokens (every finishing sequence is
replaced, so B*S/O prefill tokens per step are needed on average):
- room for prefill per step c = budget - B; a prompt that does not fit needs ceil(S / c) steps;
- closed loop (``concurrency`` N clients, fixed lengths, as benchmark clients run): requests that
  finish together resubmit together, so prompts arrive in groups of g = min(B, max(1, floor(c / (S - 1))))
  (the group's own members do not decode in its prefill step: g S <= budget - (B - g))
  that one step prefills: TTFT = step(B - g, g S); a request's TPOT is the mean step it decodes
  through: pure decode steps step(B, 0) and, a fraction f = (B / g - 1) / (O - 1) of them, the
  other groups' prefill steps (``_closed``); with N above the running cap, N - B clients
  wait for a slot, (N - B) / B * (TTFT + (O - 1) TPOT) on average (Little's law); every request sees
  the same times (p50 = p99 = mean); a finite run of R prompts sent at once queues them by place
  instead (``_finite_closed``), and with output lengths that vary about O (``output_dist``: exponential, real
  conversations; uniform, a synthetic random dataset) ends with its longest outputs draining at ever smaller
  batches (``_drain``); lengths that vary also end requests one at a time, so the clients fall out of step and
  their prompts arrive one by one, as an open loop's do at the loop's own rate (``_desynced``);
- open loop (Poisson arrivals at ``request_rate`` lambda): a prompt arrives mid-step (length-biased: the
  residual is t (1 + cv^2) / 2) and joins the next step with the others that arrived in its step,
  lambda t (1 + cv^2) on average: TTFT = that residual + wait + step(B, S + lambda t (1 + cv^2) S), where
  cv^2 carries the feedback of long steps drawing more prompts (``_open``); the wait behind other
  prompts' prefill is M/D/1 in units of a step at token utilization rho = p / c:
  W = rho / (2 (1 - rho)) * step, with P(wait > 0) = rho and an exponential tail beyond it (Kingman's
  heavy-traffic approximation), so its q-quantile is max(0, W / rho * ln(rho / (1 - q))). A request's
  TPOT is the mean of O - 1 steps, each carrying the whole prompts that arrived during the one before
  (a Poisson count N, mean lambda * step): p50 = E[step(B, N S)] (``_open``), seen by the request: one
  sequence more than the time-average B (itself), and after a time-uniform arrival, whose steps run
  longer than the mean while the long step it arrived in carries on (correlation lambda a per step),
  p99 = p50 + 2.326 a sqrt(Var[N] (1 + r) / ((1 - r) (O - 1))) (a = the time one prompt adds to a step,
  r = lambda a the correlation of successive steps); TTFT's p99 from its moments (``_ttft_p99``).
  B solves B = lambda (TTFT + (O - 1) TPOT) (Little's law; ``fixed_point``, from below), capped at
  the running cap; a rate the cap cannot sustain is marked;
- a fixed running ``batch`` is the closed loop at N = batch, taken as given (not capped: memory and
  ``fits`` say whether it is possible).
Request throughput X = B / (TTFT in the slot + (O - 1) TPOT) per replica.

``tests/test_queueing.py`` checks these means and percentiles against a discrete-event simulation of
the same scheduler (``tests/sim/scheduler_des.py``) within 15% over a grid of loads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mantile.costs.kernels import Array, any_

StepTime = Callable[[Array, Array], Array]
Z99 = 2.326  # standard normal 99th percentile
#: the open loop's two fixed points (the running batch, and the mean step at it) are solved to this relative
#: change of a plain iteration, in at most ROUNDS accelerated rounds (``fixed_point``)
TOLERANCE = 1e-9
ROUNDS = 6
#: a desynchronized closed loop's request rate is solved to this relative excess (``_desynced``): its TTFT and
#: TPOT move by less than that in the fourth digit, far inside what the simulation checks
RATE_TOLERANCE = 1e-4


def fixed_point(g: Callable[[np.ndarray], np.ndarray], x: np.ndarray, tol: float = TOLERANCE,
                rounds: int = ROUNDS) -> np.ndarray:
    """x = g(x), for a g that converges linearly under plain iteration (monotone, rate r in (0, 1)), solved
    per point with Steffensen's acceleration: two plain steps x1 = g(x), x2 = g(x1) give the rate
    r = (x2 - x1) / (x1 - x) and the limit of the geometric tail, x2 + (x2 - x1) r / (1 - r). Stops when
    every point's plain step moved less than ``tol`` relative, and returns the last plain step.

    A point whose plain steps alternate (r < 0) has no fixed point: the step time is not monotone in the
    prefill tokens everywhere (a GEMM's tile and wave quantization can make a few more tokens a little
    faster), so x and g(x) straddle a drop of g. It gets the middle of its last two steps (0.7% apart
    in the cases seen). A point still moving after ``rounds`` gets its last plain step (that middle if
    it alternates).

    The open loop's plain iterations converge at r from about 0.5 up to 0.99 (a running batch near a
    saturating load): the 12 plain steps this replaced left relative errors from 1e-3 to 5% (30 requests/s
    in ``tests/test_queueing.py``: B = 120.1 instead of 126.0); here most points take 2-4 rounds (4-8
    evaluations of g, each a forward pass of the cost model) to reach 1e-9."""
    x = np.asarray(x, dtype=float)
    for _ in range(rounds):
        x1 = np.asarray(g(x), dtype=float)
        x2 = np.asarray(g(x1), dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            if not np.any(np.abs(x2 - x1) > tol * np.abs(x2)):
                return x2
            r = (x2 - x1) / (x1 - x)
            ok = np.isfinite(r) & (r > 0.0) & (r < 0.95)
            # a contraction: the tail's limit; alternating: the middle; otherwise (r near 1): the plain step
            plain = np.where(r < 0.0, 0.5 * (x1 + x2), x2)
            x = np.where(ok, x2 + (x2 - x1) * r / (1.0 - np.where(ok, r, 0.0)), plain)
    return np.asarray(plain)


@dataclass(frozen=True)
class QueueTimings:
    """Seconds per request (means and percentiles) at the running batch, per replica."""

    running_batch: np.ndarray
    ttft_s: np.ndarray
    ttft_p50_s: np.ndarray
    ttft_p99_s: np.ndarray
    tpot_s: np.ndarray
    tpot_p50_s: np.ndarray
    tpot_p99_s: np.ndarray
    request_throughput_per_s: np.ndarray
    sustainable: np.ndarray


def running_cap(max_seqs: Array, kv_capacity_seqs: Array, budget: Array, S: Array, O: Array,  # noqa: E741
                q: Array = 1.0) -> np.ndarray:
    """Sequences that can run at once: the engine's cap, the KV cache, and the token budget of a step
    (B q decode tokens plus B*S/O prefill tokens per step must fit in it; q = k + 1 per sequence in a
    speculative verify step, O then counts steps); 0 = no limit; at least 1."""
    cap = np.minimum(np.where(max_seqs > 0, max_seqs, np.inf), kv_capacity_seqs)
    by_budget = np.where(budget > 0, np.floor(budget / (q + S / np.maximum(O, 1))), np.inf)
    return np.maximum(np.minimum(cap, by_budget), 1.0)


def _room(budget: Array, B: Array, S: Array, q: Array = 1.0) -> tuple[Array, Array]:
    """(prefill tokens a step can take beside B decodes of q tokens each, steps a prompt needs if it
    does not fit)."""
    room = np.where(budget > 0, np.maximum(budget - B * q, 1.0), B * S + S)
    return room, np.ceil(S / room)


def _closed(step: StepTime, B: Array, S: Array, O: Array, budget: Array, q: Array = 1.0  # noqa: E741
            ) -> tuple[Array, Array]:
    """(TTFT in slot, TPOT) of a closed loop with B running, fixed lengths (see module docstring)."""
    room, _ = _room(budget, B, S, q)
    # a group's own members are not decoding in its prefill step: g S <= budget - (B - g)
    group = np.minimum(B, np.maximum(1.0, np.floor(room / np.maximum(S - 1.0, 1.0))))
    prefill = step(B - group, group * S)  # the step that prefills one group
    ttft, steps_per_group = prefill, np.ones(np.shape(prefill))
    # a prompt longer than its own step's room (the budget less the others' decode tokens) is chunked
    # over several steps: full chunks, then the rest
    own = np.where(budget > 0, np.maximum(budget - (B - 1.0) * q, 1.0), S)
    long = S > own
    if any_(long):
        chunks = np.ceil(S / own)
        full, last = step(np.maximum(B - 1.0, 0.0), own), step(np.maximum(B - 1.0, 0.0), S - (chunks - 1) * own)
        prefill = np.where(long, ((chunks - 1) * full + last) / chunks, prefill)  # the mean chunk step
        ttft = np.where(long, (chunks - 1) * full + last, ttft)
        group = np.where(long, 1.0, group)
        steps_per_group = np.where(long, chunks, 1.0)
    # Prompts reach the GPU whole (a group, or the budget's chunks of one long prompt), not as a
    # trickle of S/O tokens per step: most steps decode only, and some carry a group's prefill. Over
    # one request's cycle (its group's `chunks` prefill steps, then O - 1 steps that each give it a
    # token) the B / g - 1 other groups each prefill once, inside its decode window, so a fraction
    # f = (B / g - 1) chunks / (O - 1) of the steps it decodes through carry a prefill:
    # TPOT = (1 - f) step(B, 0) + f step(prefill). The mean of the two kinds, not a step with the
    # mean prefill: a step's time is not linear in its tokens (a small batch reads few experts of an
    # MoE layer, a prefill chunk reads them all; a memory-bound decode step hides a few prefill
    # tokens that a compute-bound chunk does not).
    f = np.clip((B / group - 1.0) * steps_per_group / np.maximum(O - 1.0, 1.0), 0.0, 1.0)
    tpot = (1 - f) * step(B, 0.0) + f * prefill
    return ttft, tpot


def _open(step: StepTime, B: Array, S: Array, O: Array, budget: Array, lam: Array, q: Array = 1.0,  # noqa: E741
          tails: bool = True, start: dict[str, np.ndarray] | None = None,
          at_boundary: bool = False) -> tuple[Array, Array, Array, Array, Array]:
    """(mean TTFT, its p99, mean step = TPOT, TPOT spread, prefill utilization rho) of an open loop;
    ``tails=False`` leaves the p99 out (NaN; two forward passes fewer, for the running batch's fixed point,
    which reads the means only). ``start``: where the mean step's fixed point starts (its key ``t``, kept
    there for the next call: the running batch's fixed point calls this at nearby batches), else at the
    decode-only step.

    A step carries the prompts that arrived during the previous one: t = step(B, lambda t S) at the fixed
    point (Poisson arrivals, lambda t per step on average); a request arrives in a step (length-biased:
    residual t (1 + cv^2) / 2, cv^2 = the variance of the step from its prompts, which arrived during the
    step before it) and is prefilled in the next, which carries its S tokens and the others that arrived
    in its (length-biased) step: step(B, S + lambda t (1 + cv^2) S). The 99th percentile: ``_ttft_p99`` where
    the own step fits the room, else the 99th-percentile prompt count (normal approximation) in both steps.
    ``at_boundary``: the prompts arrive at step boundaries, as a closed loop's replacements do the moment
    a request ends (``_desynced``): no residual of a step in progress, TTFT is the own step (its p99 at the
    99th-percentile count of others)."""
    room, chunks = _room(budget, B, S, q)
    # The prompts a step carries are a Poisson count N (mean k = lambda t), and whole: the mean step is
    # E[step(B, N S)], not step(B, k S) (a step's time is not linear in its tokens: see ``_closed``).
    # Taken in two parts: no prompt (probability e^-k) and at least one (E[N | N >= 1] = k / (1 - e^-k)).
    decode = step(B, 0.0)

    def mean_step(t: np.ndarray) -> np.ndarray:
        k = lam * t
        none = np.exp(-k)
        return np.asarray(none * decode + (1 - none) * step(B, np.minimum(k * S / np.maximum(1 - none, 1e-12), room)))

    # from the decode-only step, below the fixed point, or from the last one solved nearby
    t0 = np.asarray(decode, dtype=float)
    if start is not None and "t" in start and np.shape(start["t"]) == np.shape(t0):
        t0 = np.maximum(t0, start["t"])
    t = fixed_point(mean_step, t0)
    if start is not None:
        start["t"] = np.asarray(t, dtype=float)
    k = lam * t
    per_token = (step(B, np.minimum(S + k * S, room)) - t) / np.maximum(S, 1.0)
    # A step's prompts arrived during the step before it, so a long step draws more of them: with a = the
    # time one prompt adds to a step, Var[t] = a^2 Var[N] and Var[N] = lambda E[t] + lambda^2 Var[t], so
    # Var[N] = k / (1 - (lambda a)^2) (k alone without the feedback: 30% short of the simulation's mean TTFT
    # at 80% of the step's prefill time)
    a = per_token * S
    var_n = k / (1.0 - np.minimum(lam * a, 0.95) ** 2)
    cv2 = a**2 * var_n / t**2
    # the step a request arrives in is length-biased (mean t (1 + cv^2)): the others that arrive in it, and
    # are prefilled with it in the next, number lambda t (1 + cv^2) on average, not lambda t
    kb = k * (1.0 + cv2)
    k99 = kb + Z99 * np.sqrt(var_n)
    own = np.where(S + kb * S <= room, step(B, np.minimum(S + kb * S, room)), chunks * step(B, room))
    # Its 99th percentile where the own step fits the room: TTFT = U L + own(L), the arrival step L = t_d + a N
    # (length-biased) entered at a uniform fraction U, own(L) = t_d + a (1 + lambda L); moments from a gamma
    # N (mean k, variance var_n), a shifted gamma matched to them, its quantile by Wilson-Hilferty
    # (``_ttft_p99``). The two steps' 99th-percentile counts together (t99 + own99) were 25-52% short of
    # the simulation, which takes the tail of the arrival step as a time-uniform arrival sees it.
    if tails and at_boundary:
        ttft99 = np.where(S + k99 * S <= room, step(B, np.minimum(S + k99 * S, room)), chunks * step(B, room))
    elif tails:
        t99 = step(B, np.minimum(k99 * S, room))
        own99 = np.where(S + k99 * S <= room, step(B, np.minimum(S + k99 * S, room)), chunks * step(B, room))
        ttft99 = np.where(S + k99 * S <= room, _ttft_p99(decode, a, lam, k, var_n), t99 + own99)
    else:
        ttft99 = np.full(np.shape(own), np.nan)
    rho = np.minimum(k * S / room, 0.999)
    # A request's TPOT is the mean of the steps after its own prefill, as it sees them: (1) beside the
    # time-average B others it decodes itself (Poisson arrivals see time averages), one sequence more than
    # the time-average step holds; (2) it arrived at a time-uniform moment, most likely inside a long step,
    # and a step's length carries into the next ones with correlation r = lambda a per step (the prompts of
    # step n + 1 arrived during step n), so its j-th step after the arrival step is longer than the mean by
    # t cv^2 r^j; over its O - 1 decode steps (j = 2 .. O) that adds t cv^2 r^2 (1 - r^(O-1)) / ((1 - r)(O - 1)).
    r = np.minimum(lam * a, 0.95)
    steps = np.maximum(O - 1, 1.0)
    tpot = t + (step(B + 1.0, 0.0) - decode) + t * cv2 * r**2 * (1 - r**steps) / ((1 - r) * steps)
    # its spread: the standard deviation of a mean of O - 1 steps of variance a^2 Var[N], correlated r a step
    # (an AR(1) sum: (1 + r) / (1 - r) times the independent steps' variance)
    spread = a * np.sqrt(var_n * (1 + r) / ((1 - r) * steps))
    return (own if at_boundary else 0.5 * t * (1 + cv2) + own), ttft99, tpot, spread, rho


def _ttft_p99(t_d: Array, a: Array, lam: Array, k: Array, var_n: Array) -> np.ndarray:
    """99th percentile of an open loop's TTFT = U L + c0 + c1 L (c0 = t_d + a, c1 = lambda a): the arrival step
    L = t_d + a N, length-biased (E_b[L^j] = E[L^(j+1)] / E[L]), N ~ gamma(alpha = k^2 / var_n, theta = var_n / k),
    U ~ U(0, 1) independent of L. Mean and variance of TTFT above its least value c0 + c1 t_d from those
    moments; a gamma matched to them; its 99th percentile by Wilson-Hilferty, x = alpha (1 - 1/(9 alpha) +
    z sqrt(1/(9 alpha)))^3 theta. Within 15% of the simulation's p99 from 20% to 80% of capacity."""
    t_d, a, lam = (np.asarray(v, dtype=float) for v in (t_d, a, lam))
    k, var_n = np.maximum(np.asarray(k, dtype=float), 1e-12), np.maximum(np.asarray(var_n, dtype=float), 1e-12)
    alpha, theta = k * k / var_n, var_n / k
    n1, n2, n3 = alpha * theta, alpha * (alpha + 1) * theta**2, alpha * (alpha + 1) * (alpha + 2) * theta**3
    l1 = t_d + a * n1
    l2 = t_d**2 + 2 * t_d * a * n1 + a**2 * n2
    l3 = t_d**3 + 3 * t_d**2 * a * n1 + 3 * t_d * a**2 * n2 + a**3 * n3
    b1, b2 = l2 / l1, l3 / l1  # length-biased moments of the arrival step
    c1, c0 = lam * a, t_d + a
    mean = (0.5 + c1) * b1 + c0
    var = np.maximum((1.0 / 3.0 + c1 + c1**2) * b2 + 2 * c0 * (0.5 + c1) * b1 + c0**2 - mean**2, 1e-30)
    low = c0 + c1 * t_d
    mu = np.maximum(mean - low, 1e-30)
    shape = np.maximum(mu * mu / var, 0.02)
    u = 1.0 / (9.0 * shape)
    return np.asarray(low + var / mu * shape * (1.0 - u + Z99 * np.sqrt(u)) ** 3)


def timings(step: StepTime, S: Array, O: Array, cap: Array, budget: Array, batch: Array | None = None,  # noqa: E741
            concurrency: Array | None = None, request_rate: Array | None = None, q: Array = 1.0,
            requests: Array = 0.0, varied: Array = False, uniform: Array = False) -> QueueTimings:
    """Per-replica timings for exactly one load: a fixed running ``batch``, ``concurrency`` clients in a
    closed loop, or Poisson arrivals at ``request_rate`` (requests/s to this replica). ``q``: budget
    tokens a decoding sequence takes per step (k + 1 in a speculative verify step; O is then the output
    length in steps and the per-token times are per step). ``requests`` > 0: the means and percentiles
    of a benchmark run of that many requests to this replica (``_finite_closed``, ``_finite_open``);
    0: the steady state. ``varied``: per point, whether the output lengths vary about O (``output_dist``; a
    finite closed-loop run then ends with a drain, ``_drain``) rather than all being O: exponential, or where
    ``uniform``, uniform from none to twice the mean."""
    S, O, cap, budget = (np.asarray(v, dtype=float) for v in (S, O, cap, budget))  # noqa: E741
    if request_rate is None:
        n = np.asarray(batch if batch is not None else concurrency, dtype=float)
        B = n if batch is not None else np.minimum(n, cap)  # a fixed batch is taken as given
        ttft, tpot = _closed(step, B, S, O, budget, q)
        busy = ttft + (O - 1) * tpot
        ttft99, tpot99 = ttft, tpot  # fixed lengths: every request sees the same times
        varied = np.asarray(varied, dtype=bool)
        if any_(varied):  # outputs that vary: the clients' requests no longer arrive in groups
            apart = _desynced(step, B, S, O, budget, q, B / busy)
            ttft, ttft99, tpot, tpot99, busy = (np.where(varied, v, w) for v, w in zip(
                apart, (ttft, ttft99, tpot, tpot99, busy), strict=True))
            step(B, 0.0)  # the decode-only step costed last, as the scheduler's breakdown reads it
        queue = np.maximum(n - B, 0.0) / B * busy  # clients beyond the running cap wait for a slot (Little)
        tpot = np.asarray(tpot)
        mean = np.asarray(ttft + queue)
        steady = QueueTimings(np.asarray(B), mean, mean, np.asarray(ttft99 + queue), tpot, tpot,
                              np.asarray(tpot99), np.asarray(B / busy), np.ones(np.shape(mean), dtype=bool))
        if concurrency is None or not any_(np.asarray(requests) > 0):
            return steady
        return _finite_closed(step, steady, n, S, O, budget, q, np.asarray(requests, dtype=float), varied,
                              uniform)
    lam = np.asarray(request_rate, dtype=float)

    start: dict[str, np.ndarray] = {}

    def littles_law(B: np.ndarray) -> np.ndarray:
        ttft, _, tpot, *_ = _open(step, B, S, O, budget, lam, q, tails=False, start=start)
        return np.asarray(np.minimum(np.maximum(lam * (ttft + (O - 1) * tpot), 1.0), cap))

    B = fixed_point(littles_law, np.minimum(np.maximum(lam * step(1.0, S), 1.0), cap))
    ttft, ttft99, tpot, spread, rho = _open(step, B, S, O, budget, lam, q, start=start)
    sustainable = lam * (ttft + (O - 1) * tpot) <= cap * (1 + 1e-6)
    wait, wait99 = _prefill_wait(rho, tpot)
    out = QueueTimings(np.asarray(B), np.asarray(ttft + wait), np.asarray(ttft + wait),
                       np.asarray(ttft99 + wait99), np.asarray(tpot), np.asarray(tpot),
                       np.asarray(tpot + Z99 * spread), np.asarray(B / (ttft + (O - 1) * tpot)),
                       np.asarray(sustainable))
    if not any_(np.asarray(requests) > 0):
        return out
    return _finite_open(out, lam, O, np.asarray(requests, dtype=float))


def _finite_closed(step: StepTime, steady: QueueTimings, N: np.ndarray, S: Array, O: Array, budget: Array,  # noqa: E741
                   q: Array, R: np.ndarray, varied: np.ndarray | bool = False, uniform: Array = False) -> QueueTimings:
    """A closed-loop benchmark run of R requests (``vllm bench serve --max-concurrency N --num-prompts R``,
    trtllm-bench's offline runs with R = N): the first wave of w = min(running cap, R) prompts arrives at
    once, and the engine prefills it at the step's room (the budget less the wave's decode tokens, half
    of them decoding on average) in n_b = w S / room burst steps (at least one) of step(w / 2, room) each; prompt
    i has its first token after ceil(i S / room) of them (mean m = c (w + 1) / 2 + (1 - min(c, 1)) / 2
    steps, c = S / room, at least one). The other min(N, R) - w prompts sent at start queue for slots,
    freed a wave of B at a time (fixed lengths); the R - min(N, R) sent later see the steady state, so
    - TTFT: the mean over the run of w burst values, the queued prompts' (the first wave's length, the
      steady waves ahead of them, their own wave's burst) and the steady ones; its percentiles from
      that mix (burst values spread evenly over 1..n_b steps; with a queue, TTFT rises with a prompt's
      place in the run and the p-th quantile is the prompt's at place 1 + p (R - 1));
    - TPOT: a first-wave request decodes through the rest of the burst (about n_b - m steps of the burst's
      length), then through decode-only steps step(w, 0) (the next prompts come as the wave finishes);
      later requests at the steady TPOT;
    - throughput: R requests over the run's duration: the burst (w S / room steps), the wave's last
      prompt's O - 1 decode-only steps, and the R - w later requests at the steady rate X:
      T = n_b t_b + (O - 1) step(w, 0) + (R - w) / X. With fixed lengths the run ends with its last
      full wave (a shrinking batch at the end is not modelled). With exponential lengths (``varied``)
      the run ends with a drain instead: the w requests running when the queue empties finish one by one
      over O H_w steps, at ever smaller batches (``_drain``), in place of the wave's O - 1 steps at
      step(w, 0); completions before it come at the steady rate X (the desynchronized loop's,
      ``_desynced``), and a first-wave request's mean TPOT counts the burst steps a short output decodes
      through (``burst_share``). Uniform lengths (``uniform``, from none to twice the mean) drain as
      ``_drain`` says for them: bounded by twice the mean, from the ages of a refilled loop, or from the
      whole lengths where the run's requests all came in its first wave (R <= w). The burst, its TTFT, the
      queue by place and the TPOT percentiles keep their fixed-length form (a queued prompt's wait is the
      same on average; the drain's faster steps, which a long request decodes through, are not in its TPOT).
    Points with R = 0 keep the steady state."""
    B, X = steady.running_batch, steady.request_throughput_per_s
    finite = R > 0
    Rn = np.where(finite, np.maximum(R, 1.0), 1.0)
    # the first wave; a steady point (R = 0) keeps its running batch, so that the last step costed here,
    # step(w, 0), is its own decode-only step too: the scheduler's breakdown and the TPOT floor read the
    # last step (``serving.scheduler``), and a steady point's must not depend on the finite runs beside it
    w = np.where(finite, np.minimum(B, Rn), B)
    room = np.where(budget > 0, np.maximum(budget - 0.5 * w * q, 1.0), w * S)
    room = np.minimum(room, w * S)
    c = S / room
    t_b = step(0.5 * w, room)
    varied = np.asarray(varied, dtype=bool) & finite
    uniform = np.asarray(uniform, dtype=bool) & varied
    # before step(w, 0): the breakdown and the floors read the last step costed (see above)
    drained = _drain(step, w, O, uniform, fresh=Rn <= w) if any_(varied) else 0.0
    n_b = np.maximum(w * c, 1.0)  # burst steps, the last one partly filled counted as a fraction
    m = np.maximum(c * (w + 1) / 2 + 0.5 * (1 - np.minimum(c, 1.0)), 1.0)
    burst = np.minimum(m, n_b) * t_b
    f = w / Rn  # the share of the run's requests in the burst
    # The first wave decodes through the rest of the burst, then through decode-only steps: the next
    # prompts come only as the wave's first requests finish, O steps on.
    steps = np.maximum(O - 1, 1.0)
    pure = step(w, 0.0)
    first_wave_s = n_b * t_b + (O - 1) * pure  # until the wave's last prompt has its last token
    # The initial queue: min(N, R) prompts were sent at once, the Q = min(N, R) - w beyond the first wave
    # wait for slots. Fixed lengths free slots a wave at a time: the k-th B of them (k = ceil(j / B) for
    # queue position j) start as the first wave ends and k - 1 steady waves (B / X each) after it, and are
    # prefilled together as the first wave was, so a queued prompt's TTFT is first_wave_s + (k - 1) B / X +
    # its place in its wave's burst, rising with its position. Only the
    # R - min(N, R) prompts sent later (as clients resubmit) meet the steady queue of N - B; the steady
    # TTFT for every request beyond the wave would charge a run of R = N prompts sent at once (a
    # benchmark's offline mode) twice its mean wait.
    sent = np.maximum(np.minimum(np.maximum(N, B), Rn), w)
    queued = sent - w
    wave_s = B / X
    K = np.floor(queued / B)
    waves_waited = B * K * (K - 1) / 2 + (queued - K * B) * K  # sum over the queue of k - 1
    ttft = (w * burst + queued * (burst + first_wave_s) + wave_s * waves_waited
            + (Rn - sent) * steady.ttft_s) / Rn
    # percentiles of the mix: burst values x = t_b * max(u c w, 1) for u uniform on (0, 1], the rest steady
    span = np.maximum(c * w, 1.0) * t_b
    below = f * np.clip(steady.ttft_s / span, 0.0, 1.0)  # share of the run faster than the steady TTFT

    def burst_at(u: np.ndarray) -> np.ndarray:  # the u-th fraction of the wave: whole burst steps
        return np.maximum(np.ceil(u * c * w - 1e-9), 1.0) * t_b

    def quantile(p: float) -> np.ndarray:
        u_low, u_high = p / np.maximum(f, 1e-12), (p - (1 - f)) / np.maximum(f, 1e-12)
        mixed = np.where(p < below, burst_at(u_low), np.where(p < below + (1 - f), steady.ttft_s, burst_at(u_high)))
        # with a queue, TTFT rises with a request's place in the run (burst < queue <= steady): the p-th
        # quantile is the TTFT of the request at place 1 + p (R - 1), between two places interpolated
        # linearly (numpy's percentile, which the benchmark clients report)
        def at(i: np.ndarray) -> np.ndarray:  # the TTFT of the i-th request (1-based, whole)
            k = np.ceil((i - w) / B - 1e-9)  # its wave among the queued
            queue_at = first_wave_s + (k - 1) * wave_s + burst_at((i - w - (k - 1) * B) / np.maximum(w, 1e-12))
            return np.where(i <= w, burst_at(i / np.maximum(w, 1e-12)), np.where(i <= sent, queue_at, steady.ttft_s))

        i = 1.0 + p * (Rn - 1.0)
        low = np.floor(i)
        ordered = at(low) + (i - low) * (at(np.minimum(low + 1.0, Rn)) - at(low))
        return np.asarray(np.where(queued > 0, ordered, mixed))

    in_burst = np.clip(n_b - m, 0.0, steps)
    first = (in_burst * t_b + (steps - in_burst) * pure) / steps
    first_slowest = (np.clip(n_b - 1, 0.0, steps) * t_b + (steps - np.clip(n_b - 1, 0.0, steps)) * pure) / steps
    decode = steady.tpot_s
    # outputs that vary: a short one may end inside the burst, which weighs in the mean over requests
    # (``burst_share``); the median request's TPOT stays the fixed-length form's (within 15% of the simulation)
    first_mean = (np.where(varied, pure + (t_b - pure) * burst_share(n_b / steps, uniform), first) if any_(varied)
                  else first)
    tpot = f * first_mean + (1 - f) * decode
    # the wave's last prompt decodes after the burst; with varied lengths the run ends draining instead
    duration = n_b * t_b + np.where(varied, drained, (O - 1) * pure) + (Rn - w) / X
    pick = lambda a, b: np.asarray(np.where(finite, a, b))  # noqa: E731
    return QueueTimings(steady.running_batch, pick(ttft, steady.ttft_s), pick(quantile(0.5), steady.ttft_p50_s),
                        pick(quantile(0.99), steady.ttft_p99_s), pick(tpot, decode),
                        pick(np.where(f < 0.5, decode, first), steady.tpot_p50_s),
                        pick(np.where(f > 0.01, np.maximum(first_slowest, decode), decode), steady.tpot_p99_s),
                        pick(Rn / duration, X), steady.sustainable)


def _prefill_wait(rho: Array, tpot: Array) -> tuple[np.ndarray, np.ndarray]:
    """(mean, 99th percentile) of a prompt's wait behind other prompts' prefill when their demand nears the
    step's room: M/D/1 in units of a step at token utilization rho, W = rho / (2 (1 - rho)) step, P(wait > 0)
    = rho with an exponential tail beyond it (module docstring)."""
    wait = rho / (2.0 * (1.0 - rho)) * tpot
    tail = wait / np.maximum(rho, 1e-12)
    return np.asarray(wait), np.asarray(np.where(rho > 0.01, tail * np.log(np.maximum(rho, 1e-12) / 0.01), 0.0))


def _desynced(step: StepTime, B: Array, S: Array, O: Array, budget: Array, q: Array,  # noqa: E741
              lam0: Array) -> tuple[np.ndarray, ...]:
    """(TTFT mean, p99, TPOT mean, p99, a client's busy time TTFT + (O - 1) TPOT) of a closed loop of B
    running requests whose outputs vary about O (``output_dist`` exponential or uniform). Fixed lengths keep a
    closed loop's clients in step: requests that start together finish together and send their next prompts
    together, which one step prefills as a group (``_closed``). Lengths that vary end requests one at a
    time, at random, so the replacing prompts arrive one by one at the loop's own rate lambda = g(lambda) =
    B / (TTFT + (O - 1) TPOT), each at the end of the step that ended its predecessor: TTFT and TPOT are the
    open loop's at B and lambda with no residual of a step in progress (``_open(at_boundary=True)``) and its
    wait behind other prompts' prefill. g falls as lambda rises, so lambda lies in [0, g(0)], where
    lambda - g(lambda) changes sign: found there by the secant from the grouped loop's rate ``lam0`` (near
    the answer: the rate moves little, the TTFT a lot), a step outside the bracket replaced by its middle (a
    plain iteration can overshoot into a saturated open loop). Against the simulation with drawn lengths
    (tests/test_queueing.py): mean TTFT within 25% over most of a grid where the grouped form was 2-17x too
    long, TPOT and throughput within 10%."""

    def at(lam: np.ndarray, tails: bool = False) -> tuple[np.ndarray, ...]:
        """(TTFT with its wait, TTFT p99 with its wait, TPOT, TPOT spread) at rate ``lam``."""
        ttft, ttft99, tpot, spread, rho = _open(step, B, S, O, budget, lam, q, tails=tails, at_boundary=True)
        wait, wait99 = _prefill_wait(rho, tpot)
        return np.asarray(ttft + wait), np.asarray(ttft99 + wait99), np.asarray(tpot), np.asarray(spread)

    def excess(lam: np.ndarray) -> np.ndarray:  # lambda - g(lambda): rises with lambda
        ttft, _, tpot, _ = at(lam)
        return np.asarray(lam - B / (ttft + (O - 1) * tpot))

    # the bracket [0, g(0)]; the secant from the grouped loop's rate (near the answer: the rate moves
    # little, the TTFT a lot), a step outside the current bracket replaced by the bracket's middle
    lo = np.zeros(np.broadcast(B, S, O).shape)
    hi = -excess(lo)  # g(0): no rate can be higher
    x0 = np.clip(np.asarray(lam0, dtype=float), lo, hi)
    f0 = excess(x0)
    lo, hi = np.where(f0 < 0, x0, lo), np.where(f0 < 0, hi, x0)
    lam = np.clip(x0 - f0, lo, hi)  # one plain step: g(x0)
    for _ in range(ROUNDS * 4):
        f = excess(lam)
        if not np.any(np.abs(f) > RATE_TOLERANCE * np.maximum(lam, 1e-12)):
            break
        lo, hi = np.where(f < 0, lam, lo), np.where(f < 0, hi, lam)
        with np.errstate(invalid="ignore", divide="ignore"):
            nxt = lam - f * (lam - x0) / (f - f0)
        inside = np.isfinite(nxt) & (nxt > lo) & (nxt < hi)
        x0, f0 = lam, f
        lam = np.where(inside, nxt, 0.5 * (lo + hi))
    ttft, ttft99, tpot, spread = at(lam, tails=True)
    return ttft, ttft99, tpot, np.asarray(tpot + Z99 * spread), np.asarray(ttft + (O - 1) * tpot)


#: Abramowitz & Stegun (1964), Handbook of Mathematical Functions, 5.1.53 (0 < x <= 1: E1 = -ln x + the
#: polynomial, error below 2e-7) and 5.1.56 (x >= 1: x e^x E1 = the ratio of quartics, error below 5e-5)
E1_SERIES = (-0.57721566, 0.99999193, -0.24991055, 0.05519968, -0.00976004, 0.00107857)
E1_RATIO = ((1.0, 8.5733287401, 18.0590169730, 8.6347608925, 0.2677737343),
            (1.0, 9.5733223454, 25.6329561486, 21.0996530827, 3.9584969228))


def exp1(x: Array) -> np.ndarray:
    """The exponential integral E1(x) = int_x^inf e^-t / t dt for x > 0 (Abramowitz & Stegun's
    approximations, ``E1_SERIES``, ``E1_RATIO``)."""
    x = np.maximum(np.asarray(x, dtype=float), 1e-300)
    small = -np.log(x) + np.polyval(E1_SERIES[::-1], np.minimum(x, 1.0))
    xl = np.maximum(x, 1.0)
    with np.errstate(under="ignore"):
        large = np.polyval(E1_RATIO[0], xl) / np.polyval(E1_RATIO[1], xl) * np.exp(-xl) / xl
    return np.asarray(np.where(x <= 1.0, small, large))


def burst_share(X: Array, uniform: Array = False) -> np.ndarray:  # noqa: N803
    """The share of a first-wave request's decode steps that are burst steps, on average over its place in
    a burst of X m steps (uniform: it has from 0 to X m burst steps left after its first token) and its
    output, exponential with mean m decode steps: phi(x) = E[min(x m, L) / L] = 1 - e^-x + x E1(x) for x
    burst steps left in units of m, averaged over x in (0, X): Phi(X) / X with
    Phi(X) = X - 1 + e^-X + X^2 E1(X) / 2 + (1 - (1 + X) e^-X) / 2 (by parts, d E1 / dx = -e^-x / x).
    Fixed lengths give X / 2 at most (the mean place, ``_finite_closed``); a short exponential output that
    ends inside the burst decodes at the burst's step throughout, which weighs in a mean over requests:
    against the simulation a run sent at once has 1.2-2x the fixed-length form's mean TPOT where prefill
    dominates the burst.

    ``uniform``: outputs uniform on (0, 2m) instead, y = L / m of density 1/2 on (0, 2): phi(x) = x / 2 + x / 2
    ln(2 / x) for x < 2 (every output shorter than x m ends inside the burst), 1 beyond; integrated,
    Phi(X) = X^2 (3/8 + ln(2 / X) / 4) for X <= 2 and X - 1/2 beyond (Phi(2) = 3/2)."""
    X = np.maximum(np.asarray(X, dtype=float), 1e-12)
    with np.errstate(over="ignore", under="ignore"):
        phi = X - 1.0 + np.exp(-X) + 0.5 * X * X * exp1(X) + 0.5 * (1.0 - (1.0 + X) * np.exp(-X))
    if any_(np.asarray(uniform)):
        short = np.minimum(X, 2.0)
        flat = np.where(X <= 2.0, short * short * (0.375 + 0.25 * np.log(2.0 / short)), X - 0.5)
        phi = np.where(uniform, flat, phi)
    return np.asarray(np.clip(phi / X, 0.0, 1.0))


def harmonic(n: Array) -> np.ndarray:
    """H_n, the expected longest of n exponential lengths of mean 1 (n >= 1, real n as a fluid): the
    asymptotic series at n + 6 (ln m + gamma + 1/(2m) - 1/(12m^2) + 1/(120m^4) - 1/(252m^6), gamma Euler's
    constant), less the six terms between (H_n = H_(n+6) - sum_j 1 / (n + j)), within 1e-9."""
    n = np.maximum(np.asarray(n, dtype=float), 1.0)
    m = n + 6.0
    series = (np.log(m) + np.euler_gamma + 1.0 / (2.0 * m) - 1.0 / (12.0 * m**2) + 1.0 / (120.0 * m**4)
              - 1.0 / (252.0 * m**6))
    return np.asarray(series - sum(1.0 / (n + j) for j in range(1, 7)))


def log_gamma(x: Array) -> np.ndarray:
    """ln Gamma(x) for x >= 1 (real), vectorized: Stirling's series at x + 6 (through the 1 / (1680 z^7) term;
    its error is below 1e-11 at z >= 7), less ln x (x + 1) ... (x + 5) (Gamma(x + 6) = Gamma(x) x ... (x + 5))."""
    x = np.maximum(np.asarray(x, dtype=float), 1.0)
    z = x + 6.0
    stirling = ((z - 0.5) * np.log(z) - z + 0.5 * np.log(2.0 * np.pi) + 1.0 / (12.0 * z) - 1.0 / (360.0 * z**3)
                + 1.0 / (1260.0 * z**5) - 1.0 / (1680.0 * z**7))
    return np.asarray(stirling - sum(np.log(x + j) for j in range(6)))


def _drain(step: StepTime, w: Array, O: Array, uniform: Array = False, fresh: Array = False) -> np.ndarray:  # noqa: E741
    """Decode time of the end of a run whose w running requests have outputs left to decode, no request waiting:
    T = int_0^end step(b(t), 0) dt over the fluid b(t) of requests still running t steps on (at least one), plus
    the expected longest one's time beyond the fluid's last whole request at step(1, 0).

    Exponential outputs with mean m = O - 1 decode steps (memoryless: whatever they have decoded, what is left
    is again exponential): b(t) = w e^(-t/m), and the last one ends after m H_w steps on average (``harmonic``):
    T = m [int_1^w step(b, 0) / b db + (H_w - ln w) step(1, 0)].

    ``uniform`` outputs (decode steps uniform on (0, 2m)): where the run's requests all came in its first wave
    (``fresh``, R <= w), what is left is each whole length, b(t) = w (1 - t / 2m), and the longest of w ends
    after 2m w / (w + 1): T = 2m / w int_1^w step(b, 0) db + 2m / (w (w + 1)) step(1, 0). Where the loop has
    refilled its slots (R > w) a running request is length-biased and part done: what it has left has the
    renewal residual's survival (1 - t / 2m)^2, b(t) = w (1 - t / 2m)^2, and the longest of w ends after
    2m (1 - I_w), I_w = int_0^1 (1 - u^2)^w du = sqrt(pi) / 2 Gamma(w + 1) / Gamma(w + 3/2) (``log_gamma``):
    T = m / sqrt(w) int_1^w step(b, 0) / sqrt(b) db + 2m (1 / sqrt(w) - I_w) step(1, 0).

    The integrals take step(b, 0) piecewise linear between b = 1, w^(1/3), w^(2/3) and w, each piece p + q b
    integrated exactly: exact for a step time affine in the batch (weights read once, a share per sequence),
    and a chord of a concave one (an MoE layer's expert reads saturating with the batch) from below. Four step
    evaluations, each vectorized over the points."""
    w = np.maximum(np.asarray(w, dtype=float), 1.0)
    m = np.maximum(np.asarray(O, dtype=float) - 1.0, 0.0)
    nodes = [w ** (i / 3.0) for i in range(4)]
    times = [np.asarray(step(b, 0.0), dtype=float) for b in nodes]
    uniform = np.asarray(uniform, dtype=bool)
    per_b = per_root = flat = np.zeros(np.broadcast(w, m).shape)  # int step / b, step / sqrt(b), step db
    for b0, s0, b1, s1 in zip(nodes[:-1], times[:-1], nodes[1:], times[1:], strict=True):
        width = b1 - b0
        slope = np.where(width > 0, (s1 - s0) / np.where(width > 0, width, 1.0), 0.0)
        p = s0 - slope * b0
        per_b = per_b + p * np.log(b1 / b0) + slope * width
        if any_(uniform):
            per_root = per_root + 2.0 * p * (np.sqrt(b1) - np.sqrt(b0)) + 2.0 / 3.0 * slope * (b1**1.5 - b0**1.5)
            flat = flat + p * width + 0.5 * slope * (b1 * b1 - b0 * b0)
    exponential = m * (per_b + (harmonic(w) - np.log(w)) * times[0])
    if not any_(uniform):
        return np.asarray(exponential)
    longest = 0.5 * np.sqrt(np.pi) * np.exp(log_gamma(w + 1.0) - log_gamma(w + 1.5))  # I_w
    refilled = m / np.sqrt(w) * per_root + 2.0 * m * (1.0 / np.sqrt(w) - longest) * times[0]
    whole = 2.0 * m / w * flat + 2.0 * m / (w * (w + 1.0)) * times[0]
    return np.asarray(np.where(uniform, np.where(fresh, whole, refilled), exponential))


def _finite_open(steady: QueueTimings, lam: np.ndarray, O: Array, R: np.ndarray) -> QueueTimings:  # noqa: E741
    """An open-loop benchmark run of R requests (``--request-rate`` with ``--num-prompts R``): the last
    one arrives after about R / rate seconds (or R / X when the rate is beyond what the replica
    sustains) and finishes one request latency later, so the run's throughput is R over that; TTFT and
    TPOT stay the steady state's (the run starts from an empty server and fills up)."""
    finite = R > 0
    Rn = np.where(finite, R, 1.0)
    e2e = steady.ttft_s + (np.asarray(O, dtype=float) - 1) * steady.tpot_s
    rate = np.minimum(lam, steady.request_throughput_per_s)
    duration = Rn / rate + e2e
    return dataclasses.replace(steady, request_throughput_per_s=np.asarray(
        np.where(finite, Rn / duration, steady.request_throughput_per_s)))
