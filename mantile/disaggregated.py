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

from mantile.engine.disagg import SIDE_KEYS, evaluate_disagg, side_args
from mantile.engine.spec import model_spec
from mantile.specs import SpecError


def estimate_disagg(model: Any, input_seq: int, output_seq: int, prefill: Mapping[str, Any],
                    decode: Mapping[str, Any], concurrency: int | None = None,
                    request_rate: float | None = None) -> dict[str, Any]:
    """One disaggregated deployment -> one row (a dict): ``prefill.instances`` prefill instances and
    ``decode.instances`` decode instances, each side with its own plan, hardware and engine (see the
    module docstring), under ``concurrency`` clients (closed loop) or ``request_rate`` requests/s.

    Keys: the sides' settings as ``disagg.prefill.<key>`` / ``disagg.decode.<key>``, then num_devices,
    ttft_ms (prefill queueing + pass + KV transfer), ttft_p99_ms, tpot_ms, tpot_p99_ms, e2e_latency_ms,
    kv_transfer_ms, kv_link (nvlink | network), running_batch (sequences per decode instance),
    request_throughput_per_s, throughput_tokens_per_s, throughput_tokens_per_s_per_device (all devices
    of both sides), tokens_per_s_per_user, power_w, energy_j_per_token, usd_per_hour,
    cost_usd_per_million_tokens, fits, valid, reason."""
    if (concurrency is None) == (request_rate is None):
        raise SpecError("estimate_disagg", "concurrency", concurrency, "exactly one of concurrency, request_rate")
    model_id, mspec = model_spec(model)
    p, d = side_args("prefill", prefill), side_args("decode", decode)

    out = evaluate_disagg(mspec, p, d, input_seq, output_seq, p["instances"], d["instances"], concurrency,
                          request_rate)
    row: dict[str, Any] = {"model_id": model_id, "input_seq": input_seq, "output_seq": output_seq,
                           "concurrency": concurrency, "request_rate": request_rate}
    for name, side in (("prefill", p), ("decode", d)):
        row.update({f"disagg.{name}.{k}": side.get(k) for k in SIDE_KEYS})
        row[f"disagg.{name}.dtype"] = side.get("dtype") or mspec.recipe.get("dtype", "bf16")  # the checkpoint's
    for k, v in out.items():
        x = np.asarray(v).reshape(-1)[0]
        row[k] = x.item() if hasattr(x, "item") else x
    row["kv_link"] = "nvlink" if row.pop("kv_link_nvlink") else "network"
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




__all__ = ["estimate_disagg"]
