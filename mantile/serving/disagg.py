"""Disaggregated serving: P prefill instances and D decode instances, each with its own plan and
hardware, the KV cache moving from prefill to decode.

Each side is one instance evaluated by ``system.evaluate`` on its own columns (plan, dtype, batch):
memory, ``fits`` and validity come from there, and the steps from the same cost model
(``base.Steps``: the forward passes ``evaluate`` runs), plus the engine's host time per step
(``Scheduler.wall_s``: ``host_step_us`` and ``host_per_sequence_us``, the latter behind the GPU step with an
overlap scheduler; ``Scheduler.eager_wall_s``: a pass outside CUDA graphs, such as SGLang's prefill, takes at
least its launches' host dispatch) and pipeline hops:

- a prefill pass of ``b_p`` prompts of S tokens: ``t_p = prefill(b_p, S) + (pp - 1) hop + host``; one
  instance completes ``b_p / t_p`` requests/s (prefill workers run whole prompts, no decode beside);
- a decode step of B sequences at the mean cache length S + O/2: ``TPOT = decode(B) + (pp - 1) hop +
  host + per_seq B`` (no prefill rides along: that is the point of disaggregating). A decode
  instance completes ``B / ((O - 1) TPOT)`` requests/s (the first token comes from the prefill side);
- the KV cache of one request, ``S x kv_values_per_token x bytes`` over the whole model
  (``costs.memory.kv_cache_bytes`` with no sharding), moves as ``min(devices_p, devices_d)`` parallel
  point-to-point streams (each prefill shard to its decode shard): ``transfer = comm.p2p(bytes /
  streams)`` over NVLink when both sides are one hardware system whose scale-up domain holds the
  whole deployment (P devices_p + D devices_d <= domain_size), else over the scale-out network;
- TTFT = prefill queueing + t_p + transfer (the transfer is not overlapped with the pass).

Loads (totals of the deployment):
- ``concurrency`` C clients in a closed loop: every decode instance runs B = min(C / D, its cap) sequences;
  the loop is a closed queueing network of the P prefill instances (a multi-server station, service t_p /
  b_p per request) and a delay of Z = transfer + (O - 1) TPOT, solved exactly by mean value analysis (Reiser
  and Lavenberg 1980) over n = 1..C clients, the P servers by Seidmann's approximation (one server of
  service s / P plus a delay s (P - 1) / P); a prompt leaves with its whole pass, so it also spends t_p -
  t_p / b_p beside its own share (a delay in the loop); TTFT = the prefill station's residence time + that +
  transfer (t_p + transfer for a lone client). The D decode instances hold D cap slots, each for (O - 1)
  TPOT a request: they bound the loop at D cap / ((O - 1) TPOT) requests/s, and past that bound the clients
  beyond wait for a slot before their first token (``closed_loop_mva``). MVA assumes exponential service
  (prefill passes of fixed lengths wait less: an upper bound near the knee). Every request sees the mean
  (p50 = p99). A finite run of ``num_requests`` R: its first wave of min(C, R) prompts arrives at once and
  leaves the prefill side P b_p a pass (``first_wave_ttft``); TTFT is the mix of that wave and R - w steady
  requests (TPOT and throughput stay the steady state's);
- ``request_rate`` lambda (Poisson): the prefill instances are M/D/1 queues at utilization
  rho = lambda t_p / (P b_p), waiting W = rho / (2 (1 - rho)) t_p with P(wait > 0) = rho and an
  exponential tail (as ``queueing.py``: p99 = W / rho ln(rho / 0.01)); the decode batch solves
  B = lambda / D x (O - 1) TPOT(B) (Little's law, ``queueing.fixed_point`` from below); decode steps
  carry no prefill, so a request's TPOT has no prefill spread (p99 = mean). A rate beyond either
  side's capacity (rho >= 1, or B above the decode instance's cap) is not sustainable.

Throughput per device counts the whole deployment: X O / (P devices_p + D devices_d).
``matched_instances`` gives the P:D split that balances the two sides' request rates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mantile.costs import comm, memory
from mantile.costs.axes import Axes
from mantile.costs.kernels import Array
from mantile.costs.step import Setup
from mantile.serving import energy, system
from mantile.serving.base import Steps, mean_context
from mantile.serving.queueing import fixed_point
from mantile.specs.hardware import EfficiencyProfile, HardwareSpec
from mantile.specs.model import ModelSpec
from mantile.specs.serving import ServingProfile

MAX_RHO = 0.999  # prefill utilization at which the queue is called unsustainable


@dataclass(frozen=True)
class Side:
    """One instance type: its ``system.evaluate`` result (one instance: dp = 1), its steps and its
    engine's host time per step."""

    hw: HardwareSpec
    eff: EfficiencyProfile
    serving: ServingProfile
    result: system.Result
    steps: Steps

    @classmethod
    def of(cls, model: ModelSpec, hw: HardwareSpec, eff: EfficiencyProfile, serving: ServingProfile,
           cols: dict[str, Any]) -> Side:
        serving = serving.for_device(hw.device.name, hw.device.memory_gib)  # the engine's defaults on this GPU
        ax = Axes.resolve(cols, serving.kv_dtype_for, serving.embedding_dtype_for)
        return cls(hw, eff, serving, system.evaluate(model, hw, eff, serving, ax), Steps(Setup.of(model, hw, eff,
                                                                                                  serving, ax)))

    @property
    def devices(self) -> np.ndarray:
        return np.asarray(self.result.num_devices, dtype=float)

    @property
    def batch(self) -> np.ndarray:
        return np.asarray(self.steps.batch, dtype=float)

    def prefill_pass_s(self) -> tuple[np.ndarray, np.ndarray]:
        """(wall seconds, kernel-busy seconds) of one prefill pass of ``batch`` prompts."""
        ax, b = self.steps.axes, self.batch
        c = self.steps.prefill(b, ax.input_seq)
        hops = (ax.pp - 1) * self.steps.pipeline_hop_s(b * ax.input_seq / ax.cp)
        sched, seqs = self.serving.scheduler, ax.placement.group_batch(b)
        wall = sched.eager_wall_s(sched.wall_s(c.latency_s + hops, seqs), c.total.launches, b * ax.input_seq, 0.0,
                                  0.0)
        return wall, np.asarray(c.total.busy_s)

    def decode_step_s(self, seqs: Array, prefill_tokens: Array = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """(wall seconds, kernel-busy seconds) of one decode step of ``seqs`` sequences; with
        ``prefill_tokens`` of prompts riding along it is the aggregated scheduler's step
        (``scheduler.timings``: the same pass, host time and hops)."""
        ax = self.steps.axes
        c = self.steps.decode(seqs, 1.0, mean_context(ax.input_seq, ax.output_seq),
                              mixed_seqs=np.asarray(prefill_tokens) / ax.input_seq, mixed_len=ax.input_seq)
        hops = (ax.pp - 1) * self.steps.pipeline_hop_s(np.asarray(seqs) + np.asarray(prefill_tokens))
        sched, per_rank = self.serving.scheduler, ax.placement.group_batch(np.asarray(seqs))
        wall = sched.eager_wall_s(sched.wall_s(c.latency_s + hops, per_rank), c.total.launches, prefill_tokens,
                                  per_rank, self.serving.memory_reserve.graph_batch_at(ax.tp))
        return wall, np.asarray(c.total.busy_s)

    def decode_cap(self) -> np.ndarray:
        """Sequences one decode instance can hold: the engine's cap (each attention-DP rank's, where the
        engine applies it per rank: ``Scheduler.seq_executors``) and the largest batch that fits."""
        sched = self.serving.scheduler
        cap = float(sched.max_num_seqs or np.inf) * sched.seq_executors(self.steps.axes.placement.attention_dp)
        return np.minimum(cap, np.asarray(self.result.max_batch_size, dtype=float))


def kv_transfer_s(model: ModelSpec, prefill: Side, decode: Side, same_domain: Array) -> np.ndarray:
    """Seconds to move one request's KV cache from its prefill instance to its decode instance."""
    ax = prefill.steps.axes
    whole = memory.kv_cache_bytes(model, 1.0, ax.input_seq, 1.0, 1.0, 1.0, prefill.steps.setup.kv_bytes_per_element)
    streams = np.minimum(prefill.devices, decode.devices)
    return np.asarray(comm.p2p(prefill.steps.setup.net, whole / streams, ~np.asarray(same_domain, dtype=bool)))


def same_nvlink_domain(prefill: Side, decode: Side, prefill_instances: Array, decode_instances: Array,
                       same_system: bool) -> np.ndarray:
    """Both sides on one hardware system whose scale-up domain holds the whole deployment."""
    total = prefill_instances * prefill.devices + decode_instances * decode.devices
    return np.asarray(same_system & (total <= prefill.hw.interconnect.scale_up.domain_size))


@dataclass(frozen=True)
class DisaggTimings:
    """Per point: latencies (s), the decode batch per instance, request rate and throughput of the whole
    deployment, devices, power and whether the load is sustainable."""

    ttft_s: np.ndarray
    ttft_p99_s: np.ndarray
    tpot_s: np.ndarray
    tpot_p99_s: np.ndarray
    kv_transfer_s: np.ndarray
    decode_batch: np.ndarray
    request_throughput_per_s: np.ndarray
    num_devices: np.ndarray
    power_w: np.ndarray
    sustainable: np.ndarray
    output_seq: np.ndarray

    @property
    def throughput_tokens_per_s(self) -> np.ndarray:
        """Generated tokens per second of the whole deployment."""
        return self.request_throughput_per_s * self.output_seq


def timings(prefill: Side, decode: Side, prefill_instances: Array, decode_instances: Array, transfer_s: Array,
            concurrency: Array | None = None, request_rate: Array | None = None,
            num_requests: Array | None = None) -> DisaggTimings:
    """The deployment's timings under exactly one load (see module docstring); ``num_requests`` > 0 under
    ``concurrency``: a finite run whose first wave of prompts arrives at once (``first_wave_ttft``)."""
    P, D = np.asarray(prefill_instances, dtype=float), np.asarray(decode_instances, dtype=float)
    O = np.asarray(decode.steps.axes.output_seq, dtype=float)  # noqa: E741
    t_p, busy_p = prefill.prefill_pass_s()
    per_prefill = prefill.batch / t_p  # requests/s of one prefill instance
    cap = decode.decode_cap()
    transfer = np.asarray(transfer_s, dtype=float)
    if (concurrency is None) == (request_rate is None):
        raise ValueError("disagg.timings: give exactly one of concurrency, request_rate")
    if concurrency is not None:
        C = np.asarray(concurrency, dtype=float)
        B = np.minimum(C / D, cap)
        tpot, busy_d = decode.decode_step_s(B)
        # the station serves a request in t_p / b_p of its capacity, but a prompt leaves with its whole
        # pass: the other b_p - 1 prompts' share of t_p is a delay it spends at the station too
        service = 1.0 / per_prefill
        hold = t_p - service
        # the decode side is a station of D x cap slots, each held (O - 1) TPOT a request: with more
        # clients than slots a request waits for one (as a decode worker admits it before its first token
        # goes out), and the loop's throughput cannot pass D cap / ((O - 1) TPOT)
        residence, X, slot_wait = closed_loop_mva(service, P, transfer + hold, C, (O - 1) * tpot, D * cap)
        ttft = residence + hold + transfer + slot_wait
        ttft99, tpot99, sustainable = ttft, tpot, np.ones(np.shape(ttft), dtype=bool)
        if num_requests is not None and np.any(np.asarray(num_requests) > 0):
            ttft, ttft99 = first_wave_ttft(ttft, t_p, transfer, P * prefill.batch, C, num_requests)
        rho = X / (P * per_prefill)
    else:
        lam = np.asarray(request_rate, dtype=float)
        rho = lam / (P * per_prefill)
        def littles_law(b: np.ndarray) -> np.ndarray:
            return np.asarray(np.minimum(lam / D * (O - 1) * decode.decode_step_s(np.maximum(b, 1e-9))[0], cap))

        B = fixed_point(littles_law, littles_law(np.asarray(1.0)))  # from the batch of one, below the fixed point
        tpot, busy_d = decode.decode_step_s(np.maximum(B, 1e-9))
        sustainable = (rho < MAX_RHO) & (lam / D * (O - 1) * tpot <= cap * (1 + 1e-6))
        r = np.minimum(rho, MAX_RHO)
        wait = r / (2.0 * (1.0 - r)) * t_p
        wait99 = np.where(r > 0.01, wait / np.maximum(r, 1e-12) * np.log(np.maximum(r, 1e-12) / 0.01), 0.0)
        ttft, ttft99 = t_p + transfer + wait, t_p + transfer + wait99
        tpot99 = tpot
        X = lam * np.ones(np.shape(ttft))
    devices = P * prefill.devices + D * decode.devices
    # power: a prefill device is busy for the share rho of the time, running passes busy_p / t_p busy
    u_p = energy.phase_utilization(busy_p, t_p) * np.minimum(rho, 1.0)
    u_d = energy.phase_utilization(busy_d, tpot)
    if request_rate is not None:
        u_d = u_d * energy.open_loop_busy_probability(B)
    power = (P * prefill.devices * energy.device_power_w(prefill.hw.device.idle_w, prefill.hw.device.tdp_w, u_p)
             + D * decode.devices * energy.device_power_w(decode.hw.device.idle_w, decode.hw.device.tdp_w, u_d))
    return DisaggTimings(np.asarray(ttft), np.asarray(ttft99), np.asarray(tpot), np.asarray(tpot99),
                         np.broadcast_to(transfer, np.shape(ttft)).copy(), np.asarray(B), np.asarray(X),
                         np.asarray(devices), np.asarray(power), np.asarray(sustainable), O)


def first_wave_ttft(steady_s: Array, pass_s: Array, transfer_s: Array, per_pass: Array, clients: Array,
                    num_requests: Array) -> tuple[np.ndarray, np.ndarray]:
    """(mean, p99) TTFT of a finite closed-loop run of R = ``num_requests`` requests (0: the steady state,
    ``steady_s``): its first wave of w = min(C, R) prompts arrives at once and leaves the prefill side
    ``per_pass`` = P b_p prompts a pass, the j-th pass's after j t_p (+ transfer); the other R - w see
    the steady state. Mean over the wave, with k = ceil(w / m) passes of m prompts (the last holds the
    rest): t_p (m (k - 1) k / 2 + k (w - (k - 1) m)) / w. The p99 lies in the wave when it holds more
    than 1% of the run: the pass of the wave's (w - 0.01 R)-th prompt, ceil((w - 0.01 R) / m)."""
    steady, t_p, tr = (np.asarray(v, dtype=float) for v in (steady_s, pass_s, transfer_s))
    m, C, R = (np.asarray(v, dtype=float) for v in (per_pass, clients, num_requests))
    finite = R > 0
    R_ = np.where(finite, R, 1.0)
    w = np.minimum(C, R_)
    k = np.ceil(w / m)
    wave = t_p * (m * (k - 1) * k / 2 + k * (w - (k - 1) * m)) / w + tr
    mean = np.where(finite, (w * wave + (R_ - w) * steady) / R_, steady)
    above = 0.01 * R_  # requests above the p99: the wave's last ones; the p99 request leaves with pass j
    j = np.maximum(np.ceil((w - above) / m), 1.0)
    p99 = np.where(finite & (w > above), np.maximum(j * t_p + tr, steady), mean)
    return mean, np.maximum(p99, mean)


def closed_loop_mva(service_s: Array, servers: Array, delay_s: Array, clients: Array,
                    slot_s: Array = 0.0, slots: Array = np.inf) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(residence seconds at the prefill station, throughput per second, seconds waiting for a decode slot)
    of ``clients`` in a closed loop of one multi-server station (``servers`` of ``service_s`` each,
    Seidmann's approximation: one server of service s / P plus a delay s (P - 1) / P), the decode side
    (``slots`` slots, each held ``slot_s`` by a request) and a delay ``delay_s``.

    Exact MVA over n = 1..clients with the decode side as a delay, R(n) = s/P (1 + Q(n-1)) + s (P-1)/P,
    X(n) = n / (R(n) + slot_s + Z), Q(n) = X(n) R(n), vectorized over points (iterated to the largest
    client count; each point stops at its own). The slots bound the throughput at slots / slot_s: past the
    client count n* whose X reaches that bound the decode side is the bottleneck, every slot is held, the
    prefill station keeps its state at n*, and the clients beyond wait for a slot, C / X - (R(n*) + slot_s
    + Z) (the asymptotic bound: exact away from the knee, optimistic near it; no wait while X(n) stays
    below the bound). Seidmann's form for the slots instead would charge a wait of about slot_s / slots
    per request in the loop even with far fewer clients than slots."""
    s, P, Z, C, d, c = np.broadcast_arrays(*(np.asarray(v, dtype=float)
                                             for v in (service_s, servers, delay_s, clients, slot_s, slots)))
    with np.errstate(divide="ignore"):
        bound = np.where(np.isfinite(c) & (d > 0), c / np.where(d > 0, d, 1.0), np.inf)
    q, R, X = np.zeros(s.shape), np.zeros(s.shape), np.zeros(s.shape)
    R_star = np.full(s.shape, np.nan)
    for n in range(1, int(np.max(C)) + 1):
        active = (n <= C) & np.isnan(R_star)
        if not np.any(active):  # every point at its own client count or past its knee: nothing moves further
            break
        r = s / P * (1.0 + q) + s * (P - 1.0) / P
        x = n / (r + d + Z)
        R_star = np.where(active & (x >= bound), r, R_star)  # the knee: the decode side binds from here
        R, X, q = np.where(active, r, R), np.where(active, x, X), np.where(active, x * r, q)
    bound_hit = ~np.isnan(R_star)
    X_out = np.where(bound_hit, bound, X)
    R_out = np.where(bound_hit, R_star, R)
    with np.errstate(divide="ignore", invalid="ignore"):
        wait = np.where(bound_hit, np.maximum(C / X_out - (R_out + d + Z), 0.0), 0.0)
    return R_out, X_out, wait


def matched_instances(prefill: Side, decode: Side, decode_batch: Array, transfer_s: Array = 0.0
                      ) -> np.ndarray:
    """Prefill instances per decode instance that balance the two sides' request rates at a decode
    batch of ``decode_batch``: (B / ((O - 1) TPOT(B))) / (b_p / t_p)."""
    O = np.asarray(decode.steps.axes.output_seq, dtype=float)  # noqa: E741
    t_p, _ = prefill.prefill_pass_s()
    tpot, _ = decode.decode_step_s(decode_batch)
    return np.asarray((decode_batch / ((O - 1) * tpot)) / (prefill.batch / t_p))


__all__ = ["DisaggTimings", "Side", "kv_transfer_s", "matched_instances", "same_nvlink_domain", "timings"]
