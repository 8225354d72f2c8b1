"""The Python API of disaggregated serving: ``estimate_disagg``, one deployment of P prefill and D
decode instances (``serving/disagg.py``; columns of them: ``engine.disagg.evaluate_disagg``).

    mantile.estimate_disagg(model="llama_3.3_70b", input_seq=2048, output_seq=256, concurrency=64,
                            prefill={"hardware": "nvidia_h100_80gb", "tp": 4, "instances": 2},
                            decode={"hardware": "nvidia_h100_80gb", "tp": 8, "instances": 1})

Result keys of a side are ``disagg.prefill.<key>`` and ``disagg.decode.<key>`` (``SIDE_KEYS``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from mantile.analysis import disagg_ratio as disagg_ratio_mod
from mantile.engine.disagg import SIDE_KEYS, evaluate_disagg, side_args
from mantile.engine.spec import check_axis, model_spec
from mantile.specs import SpecError

#: ``ratio``: None = the sides' ``instances`` as given; ``auto`` = chosen by ``disagg_ratio``
RATIOS = (None, "auto")


def estimate_disagg(model: Any, input_seq: int, output_seq: int, prefill: Mapping[str, Any],
                    decode: Mapping[str, Any], concurrency: int | None = None,
                    request_rate: float | None = None, ratio: str | None = None,
                    max_devices: int | None = None, num_requests: int = 0) -> dict[str, Any]:
    """One disaggregated deployment -> one row (a dict): ``prefill.instances`` prefill instances and
    ``decode.instances`` decode instances, each side with its own plan, hardware and engine (see the
    module docstring), under ``concurrency`` clients (closed loop) or ``request_rate`` requests/s.

    Keys: the sides' settings as ``disagg.prefill.<key>`` / ``disagg.decode.<key>``, then num_devices,
    ttft_ms (prefill queueing + pass + KV transfer), ttft_p99_ms, tpot_ms, tpot_p99_ms, e2e_latency_ms,
    kv_transfer_ms, kv_link (nvlink | network), running_batch (sequences per decode instance),
    request_throughput_per_s, throughput_tokens_per_s, throughput_tokens_per_s_per_device (all devices
    of both sides), tokens_per_s_per_user, power_w, energy_j_per_token, usd_per_hour,
    cost_usd_per_million_tokens, fits, valid, reason.

    ``ratio="auto"``: the sides' ``instances`` are chosen by ``disagg_ratio`` (for ``request_rate``, or
    within ``max_devices``) instead of given; ``disagg.ratio_note`` says what was chosen and why.
    ``num_requests`` > 0 (with ``concurrency``): a benchmark run of that many requests, whose first wave
    arrives at once (TTFT mixes it with the steady state; ``serving.disagg.first_wave_ttft``)."""
    if (concurrency is None) == (request_rate is None):
        raise SpecError("estimate_disagg", "concurrency", concurrency, "exactly one of concurrency, request_rate")
    (num_requests,) = check_axis("num_requests", 0 if num_requests is None else num_requests)
    if num_requests and request_rate is not None:
        raise SpecError("estimate_disagg", "num_requests", num_requests, "0 under request_rate (a finite run is "
                        "modelled for a closed loop: concurrency)")
    if ratio not in RATIOS:
        raise SpecError("estimate_disagg", "ratio", ratio, RATIOS)
    model_id, mspec = model_spec(model)
    p, d = side_args("prefill", prefill), side_args("decode", decode)
    note = None
    if ratio == "auto":
        for name, side in (("prefill", prefill), ("decode", decode)):
            if "instances" in side:
                raise SpecError("estimate_disagg", f"{name}.instances", side["instances"],
                                "no value with ratio='auto' (the search chooses it)")
        chosen = disagg_ratio_mod.choose(disagg_ratio_mod.instance_rates(mspec, p, d, input_seq, output_seq),
                                     request_rate, _budget(max_devices))
        p["instances"], d["instances"], note = chosen.prefill_instances, chosen.decode_instances, chosen.note
    elif max_devices is not None:
        raise SpecError("estimate_disagg", "max_devices", max_devices, "no value without ratio='auto'")

    out = evaluate_disagg(mspec, p, d, input_seq, output_seq, p["instances"], d["instances"], concurrency,
                          request_rate, num_requests or None)
    row: dict[str, Any] = {"model_id": model_id, "input_seq": input_seq, "output_seq": output_seq,
                           "concurrency": concurrency, "request_rate": request_rate, "num_requests": num_requests}
    for name, side in (("prefill", p), ("decode", d)):
        row.update({f"disagg.{name}.{k}": side.get(k) for k in SIDE_KEYS})
        row[f"disagg.{name}.dtype"] = side.get("dtype") or mspec.recipe.get("dtype", "bf16")  # the checkpoint's
    for k, v in out.items():
        x = np.asarray(v).reshape(-1)[0]
        row[k] = x.item() if hasattr(x, "item") else x
    row["kv_link"] = "nvlink" if row.pop("kv_link_nvlink") else "network"
    row["disagg.ratio"], row["disagg.max_devices"], row["disagg.ratio_note"] = ratio, max_devices, note
    row["reason"] = _reason(row)
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


def _reason(row: Mapping[str, Any]) -> str | None:
    if not row["fits"]:
        return "does not fit: a side's weights and one sequence's KV cache exceed its usable memory"
    if not row["sustainable"]:
        return "the load exceeds the prefill or decode instances' capacity"
    if not row["valid"]:
        return "invalid plan on a side: check estimate() of that side for the reason"
    return None


def _budget(max_devices: Any) -> int | None:
    if max_devices is not None and not (isinstance(max_devices, (int, np.integer)) and not isinstance(max_devices, bool)
                                        and max_devices >= 1):
        raise SpecError("estimate_disagg", "max_devices", max_devices, "a positive integer (devices of both sides)")
    return None if max_devices is None else int(max_devices)


def disagg_ratio(model: Any, input_seq: int, output_seq: int, prefill: Mapping[str, Any], decode: Mapping[str, Any],
                 request_rate: float | None = None, max_devices: int | None = None) -> dict[str, Any]:
    """The P:D split of a disaggregated deployment whose sides have the given plans (``instances`` not
    given): the fewest devices sustaining ``request_rate`` requests/s, or the largest capacity within
    ``max_devices`` devices (``analysis.disagg_ratio``). Keys: prefill_instances, decode_instances,
    num_devices, capacity_requests_per_s, matched_ratio (x_d / x_p), basis, note, rates (what one
    instance of each side completes, and its devices)."""
    if request_rate is not None and not (isinstance(request_rate, (int, float)) and not isinstance(request_rate, bool)
                                         and 0 < request_rate < math.inf):
        raise SpecError("disagg_ratio", "request_rate", request_rate, "a positive number (requests/s)")
    _, mspec = model_spec(model)
    p, d = side_args("prefill", prefill), side_args("decode", decode)
    rates = disagg_ratio_mod.instance_rates(mspec, p, d, input_seq, output_seq)
    return disagg_ratio_mod.choose(rates, request_rate, _budget(max_devices)).to_dict()


__all__ = ["RATIOS", "disagg_ratio", "estimate_disagg"]
