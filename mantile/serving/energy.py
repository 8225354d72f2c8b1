"""Power and energy of a deployment, from how busy its devices are.

A device draws its idle power (``device.idle_w``: a serving engine loaded, clocks up, no work) plus a
dynamic part that grows linearly with utilization up to its board power (``device.tdp_w``)::

    power per device = idle_w + (tdp_w - idle_w) * u,      0 <= u <= 1

The linear idle-to-TDP model is the usual first-order GPU power model (power rises with the fraction
of time the chip's units switch; clocks and voltage are pinned while an engine serves). Its
utilization ``u`` is the fraction of wall time the device runs kernels at their roofline limit: the
cost model's ``busy_s`` (the sum over kernels of max(compute time, memory time) at the achieved
efficiency, ``costs.kernels.Cost``) over the step's wall time. Fixed per-kernel overheads (launch
gaps), exposed collectives, pipeline hops and the engine's host time per step count as idle. A
memory-bound kernel counts as busy as a compute-bound one: decode at large batch keeps HBM and the
SMs streaming, and measured H100 / H200 inference draws 400-600 W of 700 W (a choice, not a fit).

- static and plain continuous batching: a request's life is one prefill pass then output_seq - 1
  decode passes, so ``u = (u_prefill * ttft + u_decode * (output_seq - 1) * tpot) / e2e``, each
  ``u_phase = busy_s / latency_s`` of that phase's pass;
- an engine's scheduler: every step is one mixed pass (decode tokens plus the prefill chunk riding
  along), whose wall time is the TPOT; ``u = busy_s / tpot``;
- an open loop (``request_rate``): the engine idles when no request is in the system. With Poisson
  arrivals the number in the system is Poisson (M/G/inf) with mean N (Little's law), so
  the engine is busy with probability ``1 - exp(-N)``, N = rate per replica x e2e and ``u`` is scaled by it.

``energy_j_per_token = power_w / throughput_tokens_per_s`` (generated tokens of the whole deployment).
Host CPUs, NICs, switches and cooling are outside (device power only; MLPerf Power measures the wall).
"""

from __future__ import annotations

import numpy as np

from mantile.costs.kernels import Array


def device_power_w(idle_w: float | None, tdp_w: float | None, utilization: Array) -> np.ndarray:
    """idle + (tdp - idle) * u per device (NaN where the hardware file has no idle or TDP figure)."""
    if idle_w is None or tdp_w is None:
        return np.full(np.shape(utilization), np.nan)
    return idle_w + (tdp_w - idle_w) * np.clip(np.asarray(utilization, dtype=float), 0.0, 1.0)


def phase_utilization(busy_s: Array, wall_s: Array) -> np.ndarray:
    """The busy fraction of one pass: kernel time at the roofline over its wall time, at most 1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.clip(np.asarray(busy_s, dtype=float) / np.asarray(wall_s, dtype=float), 0.0, 1.0)


def request_utilization(u_prefill: Array, u_decode: Array, ttft_s: Array, tpot_s: Array, output_seq: Array
                        ) -> np.ndarray:
    """Time-weighted busy fraction over one request: one prefill pass, then output_seq - 1 decode passes."""
    decode_s = (np.asarray(output_seq, dtype=float) - 1.0) * tpot_s
    with np.errstate(divide="ignore", invalid="ignore"):
        return (u_prefill * ttft_s + u_decode * decode_s) / (ttft_s + decode_s)


def open_loop_busy_probability(running_batch: Array) -> np.ndarray:
    """P(at least one request in the system) for Poisson arrivals: 1 - exp(-mean number in system)."""
    return 1.0 - np.exp(-np.maximum(np.asarray(running_batch, dtype=float), 0.0))


def energy_j_per_token(power_w: Array, throughput_tokens_per_s: Array) -> np.ndarray:
    """Joules per generated token: deployment power over generated tokens per second."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(power_w, dtype=float) / np.asarray(throughput_tokens_per_s, dtype=float)
