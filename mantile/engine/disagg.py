"""Columns of disaggregated deployments (``evaluate_disagg``): each side an instance of one hardware
system and serving engine, evaluated by ``serving.disagg`` (itself ``system.evaluate`` plus the
cost model's steps); the front door is ``mantile.estimate_disagg``, the search ``analysis.recommend``.

A side's keys (``SIDE_KEYS``): hardware, serving, tp, pp, ep, dp_attention, dtype, kv_dtype, batch_size
(prompts per prefill pass; ignored on the decode side, whose batch follows from the load) and
instances.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np

from mantile.engine.spec import DTYPE_AUTO, STR_AXES, check_axis, resolve_serving, resolve_systems
from mantile.serving import disagg, energy
from mantile.specs import SpecError, ids
from mantile.specs.catalog import has
from mantile.specs.hardware import EfficiencyProfile, HardwareSpec
from mantile.specs.model import ModelSpec
from mantile.specs.serving import ServingProfile

SIDE_KEYS = ("hardware", "serving", "tp", "pp", "ep", "dp_attention", "dtype", "kv_dtype", "batch_size",
             "instances")
INT_KEYS = ("tp", "pp", "ep", "batch_size", "instances")
SECONDS_PER_HOUR = 3600.0


@lru_cache(maxsize=256)
def side_system(hardware_id: str, serving_id: str) -> tuple[HardwareSpec, EfficiencyProfile, ServingProfile]:
    """A side's hardware, efficiency constants and serving profile (loaded once per process)."""
    profile = resolve_serving(serving_id)
    sys_ = resolve_systems(hardware_id, profile)[hardware_id]
    return sys_.spec, sys_.eff, profile


def check_side_key(name: str, key: str, value: Any) -> None:
    """One setting of a side (``name`` is prefill or decode); a SpecError names ``<name>.<key>``."""
    field = f"{name}.{key}"
    if key not in SIDE_KEYS:
        raise SpecError("estimate_disagg", field, value, f"valid keys: {list(SIDE_KEYS)}")
    if key in INT_KEYS and not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1):
        raise SpecError("estimate_disagg", field, value, "a positive integer")
    if key in ("hardware", "serving") and (not isinstance(value, str) or not has(key, value)):
        raise SpecError("estimate_disagg", field, value, ids(key))
    allowed = (DTYPE_AUTO, *STR_AXES["dtype"]) if key == "dtype" else STR_AXES.get(key, ())
    if key in ("dtype", "kv_dtype") and value is not None and value not in allowed:
        raise SpecError("estimate_disagg", field, value, allowed)
    if key == "dp_attention" and not isinstance(value, (bool, np.bool_)):
        raise SpecError("estimate_disagg", field, value, "true or false")


def side_args(name: str, side: Mapping[str, Any] | None) -> dict[str, Any]:
    """A side's settings checked (errors name ``prefill.<key>``), with defaults filled in."""
    if not isinstance(side, Mapping):
        raise SpecError("estimate_disagg", name, side, f"a mapping with keys {list(SIDE_KEYS)}")
    for k, v in side.items():
        check_side_key(name, k, v)
    if "hardware" not in side:
        raise SpecError("estimate_disagg", f"{name}.hardware", None, "a hardware id (mantile.hardware())")
    out = {"serving": "vllm", "tp": 1, "pp": 1, "ep": 1, "dp_attention": False, "batch_size": 1, "instances": 1}
    out.update(side)
    if out.get("dtype") == DTYPE_AUTO:  # the checkpoint's own format, as ``dtype=None``
        out["dtype"] = None
    return out


def sides(model: ModelSpec, prefill: Mapping[str, Any], decode: Mapping[str, Any], input_seq: Any,
          output_seq: Any, n: int) -> tuple[disagg.Side, disagg.Side]:
    """One prefill and one decode instance (``serving.disagg.Side``) over ``n`` points."""
    out = []
    for side in (prefill, decode):
        hw, eff, profile = side_system(side["hardware"], side["serving"])
        out_seq = 1 if side is prefill else output_seq  # a prefill instance holds the prompt's KV only
        out.append(disagg.Side.of(model, hw, eff, profile, side_cols(model, side, input_seq, out_seq, n)))
    return out[0], out[1]


def side_cols(model: ModelSpec, side: Mapping[str, Any], input_seq: Any, output_seq: Any, n: int) -> dict[str, Any]:
    """Raw columns of one side (``Axes.resolve`` input), one instance (dp = 1)."""
    dtype = side.get("dtype")
    extra: dict[str, Any] = {}
    if dtype is None:
        recipe = dict(model.recipe)
        dtype = recipe.pop("dtype", "bf16")
        extra = recipe
    check_axis("dtype", dtype)
    arr = lambda v: np.broadcast_to(np.asarray(v), n)  # noqa: E731
    cols: dict[str, Any] = {"tp": arr(side["tp"]), "pp": arr(side["pp"]), "dp": arr(1), "ep": arr(side["ep"]),
                            "cp": arr(1), "sp": arr(1), "embedding_tp": arr(side["tp"]),
                            "batch_size": arr(side["batch_size"]), "input_seq": arr(input_seq),
                            "output_seq": arr(output_seq), "dtype": dtype,
                            "dp_attention": arr(np.asarray(side["dp_attention"], dtype=bool)),
                            "redundant_experts": arr(0),
                            "expert_imbalance": arr(1.0), **extra}
    if side.get("kv_dtype") is not None:
        cols["kv_dtype"] = side["kv_dtype"]
    return cols


def evaluate_disagg(model: ModelSpec, prefill: Mapping[str, Any], decode: Mapping[str, Any], input_seq: Any,
                    output_seq: Any, prefill_instances: Any, decode_instances: Any, concurrency: Any = None,
                    request_rate: Any = None, num_requests: Any = None) -> dict[str, np.ndarray]:
    """Columns of disaggregated deployments: ``prefill`` and ``decode`` hold one hardware and serving id
    each and plan values (scalars or equal-length arrays); every other argument too."""
    n = int(max(np.size(v) for v in (input_seq, output_seq, prefill_instances, decode_instances,
                                     concurrency if concurrency is not None else 1,
                                     request_rate if request_rate is not None else 1,
                                     *(prefill[k] for k in INT_KEYS if k in prefill),
                                     *(decode[k] for k in INT_KEYS if k in decode))))
    pre, dec = sides(model, prefill, decode, input_seq, output_seq, n)
    P = np.broadcast_to(np.asarray(prefill_instances, dtype=float), n)
    D = np.broadcast_to(np.asarray(decode_instances, dtype=float), n)
    same = disagg.same_nvlink_domain(pre, dec, P, D, prefill["hardware"] == decode["hardware"])
    transfer = disagg.kv_transfer_s(model, pre, dec, same)
    t = disagg.timings(pre, dec, P, D, transfer, concurrency=concurrency, request_rate=request_rate,
                       num_requests=num_requests)
    valid = np.asarray(pre.result.valid & dec.result.valid & t.sustainable)
    fits = np.asarray(pre.result.fits & dec.result.fits & (dec.decode_cap() >= 1))
    O = np.broadcast_to(np.asarray(output_seq, dtype=float), n)  # noqa: E741
    nan = lambda v: np.where(valid, np.broadcast_to(v, n), np.nan)  # noqa: E731
    price = lambda s, d: (np.nan if s.hw.system.price_usd_per_device_hour is None  # noqa: E731
                          else s.hw.system.price_usd_per_device_hour) * d
    usd_per_hour = price(pre, P * pre.devices) + price(dec, D * dec.devices)
    thr = t.throughput_tokens_per_s
    return {
        "num_devices": t.num_devices, "ttft_ms": nan(t.ttft_s * 1e3), "ttft_p99_ms": nan(t.ttft_p99_s * 1e3),
        "tpot_ms": nan(t.tpot_s * 1e3), "tpot_p99_ms": nan(t.tpot_p99_s * 1e3),
        "e2e_latency_ms": nan((t.ttft_s + (O - 1) * t.tpot_s) * 1e3), "kv_transfer_ms": t.kv_transfer_s * 1e3,
        "kv_link_nvlink": same, "running_batch": nan(t.decode_batch),
        "request_throughput_per_s": nan(t.request_throughput_per_s), "throughput_tokens_per_s": nan(thr),
        "throughput_tokens_per_s_per_device": nan(thr / t.num_devices), "tokens_per_s_per_user": nan(1.0 / t.tpot_s),
        "power_w": nan(t.power_w), "energy_j_per_token": nan(energy.energy_j_per_token(t.power_w, thr)),
        "usd_per_hour": np.broadcast_to(usd_per_hour, n),
        "cost_usd_per_million_tokens": nan(usd_per_hour / SECONDS_PER_HOUR / thr * 1e6),
        "prefill_devices": pre.devices, "decode_devices": dec.devices,
        "prefill_memory_gb_per_device": np.asarray(pre.result.memory_gb_per_device),
        "decode_weights_gb_per_device": np.asarray(dec.result.weights_gb_per_device),
        "decode_max_batch_size": dec.decode_cap(), "fits": fits, "valid": valid, "sustainable": t.sustainable,
    }


__all__ = ["INT_KEYS", "SIDE_KEYS", "check_side_key", "evaluate_disagg", "side_args", "side_cols", "side_system",
           "sides"]
