"""The P:D ratio of a disaggregated deployment: how many prefill and decode instances match the two
phases' throughputs (``disagg.ratio=auto``, ``mantile.disagg_ratio``), by exact enumeration.

Each side's plan fixes what one instance completes (``serving.disagg``):

- a prefill instance: ``x_p = b_p / t_p`` requests/s (``b_p`` prompts per pass of ``t_p`` seconds);
- a decode instance at its largest batch ``B_max`` (the engine's ``max_num_seqs`` and the largest batch
  that fits): ``x_d = B_max / ((O - 1) TPOT(B_max))`` requests/s (the first token comes from prefill).

P prefill and D decode instances then sustain at most ``min(P x_p, D x_d)`` requests/s (the capacity);
the ratio that matches the phases is P / D = x_d / x_p. Two questions, each answered exactly:

- a load ``request_rate`` lambda: the fewest devices that sustain it. The two sides' conditions are
  independent (prefill utilization lambda / (P x_p) below ``serving.disagg.MAX_RHO``; the decode batch's
  fixed point at or below B_max, i.e. lambda / D <= x_d, as TPOT rises with the batch), so the smallest
  P and the smallest D that meet them are the answer: P = floor(lambda / (MAX_RHO x_p)) + 1,
  D = ceil(lambda / x_d). With ``max_devices`` too and that split over the budget, the budget's answer
  below is taken instead (the estimate then says the load is not sustainable);
- a device budget N (``max_devices``): the largest capacity with P devices_p + D devices_d <= N, then
  the fewest devices, then the fewest prefill instances. For each P, D beyond ceil(P x_p / x_d) adds
  nothing, so D = min(the most that fit, that many): one candidate per P, P = 1, 2, ... while a decode
  instance still fits.

``tests/test_disagg_ratio.py`` checks both against a brute force over every (P, D) of a small space.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mantile.engine.disagg import sides
from mantile.serving.disagg import MAX_RHO
from mantile.specs import SpecError
from mantile.specs.model import ModelSpec

#: float slack when a rate divides exactly (lambda = D x_d must give D, not D + 1)
EPS = 1e-9


@dataclass(frozen=True)
class InstanceRates:
    """What one instance of each side completes, and its devices."""

    prefill_requests_per_s: float  # x_p = b_p / t_p
    decode_requests_per_s: float  # x_d = B_max / ((O - 1) TPOT(B_max)); 0 when no sequence fits
    decode_batch: float  # B_max
    prefill_devices: int
    decode_devices: int
    fits: bool  # both sides valid and fit, with room for at least one decode sequence


@dataclass(frozen=True)
class Ratio:
    """The chosen split: instances, devices, capacity and how it was chosen."""

    prefill_instances: int
    decode_instances: int
    num_devices: int
    capacity_requests_per_s: float  # min(P x_p, D x_d)
    matched_ratio: float  # x_d / x_p: prefill instances per decode instance that balance the phases
    basis: str  # "request_rate" | "max_devices" | "not searched"
    note: str
    rates: InstanceRates

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def instance_rates(model: ModelSpec, prefill: Mapping[str, Any], decode: Mapping[str, Any], input_seq: int,
                   output_seq: int) -> InstanceRates:
    """``x_p``, ``x_d`` and the devices of one instance of each side (checked side settings:
    ``engine.disagg.side_args``)."""
    if output_seq < 2:
        raise SpecError("disagg_ratio", "output_seq", output_seq, "an integer >= 2 (decode instances generate "
                        "tokens 2 .. output_seq)")
    pre, dec = sides(model, prefill, decode, input_seq, output_seq, 1)
    t_p = float(pre.prefill_pass_s()[0][0])
    cap = float(dec.decode_cap()[0])
    ok = bool(pre.result.valid[0] and pre.result.fits[0] and dec.result.valid[0] and dec.result.fits[0] and cap >= 1)
    x_d = cap / ((output_seq - 1) * float(dec.decode_step_s(np.array([cap]))[0][0])) if ok else 0.0
    return InstanceRates(float(pre.batch[0]) / t_p, x_d, cap, int(pre.devices[0]), int(dec.devices[0]), ok)


def capacity(rates: InstanceRates, p: int, d: int) -> float:
    """Requests/s that ``p`` prefill and ``d`` decode instances sustain at most."""
    return min(p * rates.prefill_requests_per_s, d * rates.decode_requests_per_s)


def for_load(rates: InstanceRates, request_rate: float) -> tuple[int, int]:
    """The fewest prefill and decode instances that sustain ``request_rate`` (module docstring)."""
    p = math.floor(request_rate / (MAX_RHO * rates.prefill_requests_per_s)) + 1
    d = max(1, math.ceil(request_rate / rates.decode_requests_per_s - EPS))
    return p, d


def for_budget(rates: InstanceRates, max_devices: int) -> tuple[int, int]:
    """The largest capacity within ``max_devices`` devices, then the fewest devices, then the fewest
    prefill instances (module docstring)."""
    dp, dd = rates.prefill_devices, rates.decode_devices
    best: tuple[float, int, int] | None = None
    out = (1, 1)
    for p in range(1, (max_devices - dd) // dp + 1):
        d_max = (max_devices - p * dp) // dd
        d_need = max(1, math.ceil(p * rates.prefill_requests_per_s / rates.decode_requests_per_s - EPS))
        d = min(d_max, d_need)
        key = (capacity(rates, p, d), -(p * dp + d * dd), -p)
        if best is None or key > best:
            best, out = key, (p, d)
    return out


def choose(rates: InstanceRates, request_rate: float | None = None, max_devices: int | None = None) -> Ratio:
    """The split for a load, a budget or both (module docstring); with a side that does not fit, 1:1
    and a note (the estimate says which side)."""
    if request_rate is None and max_devices is None:
        raise SpecError("disagg_ratio", "ratio", "auto", "a load (request_rate) or a device budget (max_devices) "
                        "to choose the prefill and decode instances for")
    smallest = rates.prefill_devices + rates.decode_devices
    if max_devices is not None and max_devices < smallest:
        raise SpecError("disagg_ratio", "max_devices", max_devices, f"at least {smallest} (one prefill instance of "
                        f"{rates.prefill_devices} and one decode instance of {rates.decode_devices} devices)")
    matched = rates.decode_requests_per_s / rates.prefill_requests_per_s if rates.fits else math.nan

    def ratio(p: int, d: int, basis: str, note: str) -> Ratio:
        devices = p * rates.prefill_devices + d * rates.decode_devices
        return Ratio(p, d, devices, capacity(rates, p, d), matched, basis, note, rates)

    if not rates.fits:
        return ratio(1, 1, "not searched", "a side is invalid or does not fit: 1 prefill and 1 decode instance")
    per = (f"a prefill instance does {rates.prefill_requests_per_s:.3g} req/s, a decode instance "
           f"{rates.decode_requests_per_s:.3g} req/s at batch {rates.decode_batch:g}")
    if request_rate is not None:
        p, d = for_load(rates, request_rate)
        devices = p * rates.prefill_devices + d * rates.decode_devices
        if max_devices is None or devices <= max_devices:
            return ratio(p, d, "request_rate", f"fewest devices sustaining {request_rate:g} req/s: {per}")
        p, d = for_budget(rates, max_devices)
        return ratio(p, d, "max_devices", f"{request_rate:g} req/s needs {devices} devices, more than "
                     f"max_devices={max_devices}: the largest capacity within the budget instead; {per}")
    assert max_devices is not None
    p, d = for_budget(rates, max_devices)
    return ratio(p, d, "max_devices", f"largest capacity within {max_devices} devices: {per}")


__all__ = ["InstanceRates", "Ratio", "capacity", "choose", "for_budget", "for_load", "instance_rates"]
