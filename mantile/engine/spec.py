"""SweepSpec: what one run evaluates: models x hardware x the crossed axes, plus engine settings.

Axis values arrive from Hydra (scalars, lists), from the Python API or from the HTTP API; they are
checked here, before any work starts, and every error names the key, the bad value and what is valid.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mantile.costs.axes import OUTPUT_DISTS
from mantile.engine.bounds import check_size
from mantile.specs import DTYPES, HardwareSpec, ModelSpec, ServingProfile, SpecError
from mantile.specs._load import build
from mantile.specs.catalog import (
    has,
    ids,
    load_engine_efficiency,
    load_hardware,
    load_model,
    load_serving,
    model_from_dict,
)
from mantile.specs.dtypes import PEAK_KEY
from mantile.specs.hardware import EfficiencyProfile
from mantile.specs.hf import config_path, model_from_config, model_id_of
from mantile.specs.speculative import METHODS

#: Sweepable integer axes (short CLI keys) and their meaning.
INT_AXES: dict[str, str] = {
    "tp": "tensor parallel degree", "pp": "pipeline parallel stages", "dp": "data parallel replicas",
    "ep": "expert parallel degree (taken from the tp group)", "cp": "context parallel degree",
    "sp": "sequence parallel (1, or equal to tp)", "batch_size": "concurrent sequences per replica",
    "input_seq": "prompt tokens per sequence", "output_seq": "generated tokens per sequence",
    "embedding_tp": "vocab-parallel degree of embedding + LM head (default: tp)",
    "concurrency": "clients in a closed loop (each sends its next request when its last one finishes)",
}
#: Sweepable positive real axes.
FLOAT_AXES: dict[str, str] = {"request_rate": "requests per second arriving at the deployment (Poisson)"}
#: The load keys, strongest first: one of them sets the load of a point; a given request_rate or
#: concurrency replaces the workload preset's batch_size.
LOADS = ("request_rate", "concurrency", "batch_size")
STR_AXES: dict[str, tuple[str, ...]] = {"dtype": DTYPES, "kv_dtype": DTYPES}
#: ``dtype=auto``: the checkpoint's own format (``ModelSpec.recipe``: fp8 for DeepSeek-V3's fp8 weights,
#: fp4 experts for GPT-OSS's mxfp4, else bf16), resolved per model before the cost model runs
#: (``engine.table.checkpoint_dtypes``), so a sweep, a CLI run, an HTTP body and ``estimate`` default alike.
DTYPE_AUTO = "auto"
AXES: tuple[str, ...] = ("tp", "pp", "dp", "ep", "cp", "sp", "batch_size", "input_seq", "output_seq",
                         "dtype", "kv_dtype", "embedding_tp", "concurrency", "request_rate")
DEFAULTS: dict[str, Any] = {"tp": 1, "pp": 1, "dp": 1, "ep": 1, "cp": 1, "sp": 1, "dtype": DTYPE_AUTO,
                            "kv_dtype": None, "embedding_tp": None}
#: Expert-parallel serving keys (costs.blocks.Placement, costs.feedforward.MoEMLP): meaning and default.
EP_AXES: dict[str, tuple[str, Any]] = {
    "dp_attention": ("data-parallel attention: each attention rank serves its own sequences (true/false)", False),
    "redundant_experts": ("extra expert replicas spread over the ep devices (EPLB), an integer >= 0", 0),
    "expert_imbalance": ("load of the busiest expert device over the mean (EPLB factor), a number >= 1", 1.0),
}
AXES = AXES + tuple(EP_AXES)
DEFAULTS.update({k: default for k, (_, default) in EP_AXES.items()})
#: Speculative decoding and prefix caching (serving.speculative, serving.base.Steps): meaning and default.
SPEC_AXES: dict[str, tuple[str, Any]] = {
    "spec_method": (f"speculative decoding: one of {list(METHODS)}", "none"),
    "spec_num_tokens": ("draft tokens per verify step k, an integer >= 1 when spec_method is set", 0),
    "spec_acceptance": ("0 = the method's default (conf/speculative.yaml); a per-position acceptance rate in "
                        "(0, 1); or a mean acceptance length >= 1 (tokens per verify step, bonus token counted)", 0.0),
    "prefix_cache_hit_rate": ("fraction of prompt tokens found in the prefix cache, in [0, 1]", 0.0),
}
STR_AXES["spec_method"] = METHODS
#: The CLI's ``spec:`` section (conf/config.yaml) -> sweep keys; ``spec.draft_model`` is the serving
#: profile's ``draft_model`` (one id per run).
CLI_SPEC_KEYS = {"spec.method": "spec_method", "spec.num_tokens": "spec_num_tokens",
                 "spec.acceptance": "spec_acceptance"}
AXES = AXES + tuple(SPEC_AXES)
DEFAULTS.update({k: default for k, (_, default) in SPEC_AXES.items()})
#: The length of a benchmark run (serving.queueing): meaning and default (0 = serving that runs on).
RUN_AXES: dict[str, tuple[str, Any]] = {
    "num_requests": ("requests a benchmark run sends in all, an integer >= 0 (0: a steady state). Under "
                     "concurrency the clients' first requests arrive at once, and TTFT and throughput are the "
                     "run's means (InferenceMAX sends 10 x concurrency; trtllm-bench's offline runs send all at "
                     "once); under request_rate the run ends when its last request does", 0),
}
RUN_AXES["output_dist"] = (f"how output lengths spread about output_seq (their mean): one of {list(OUTPUT_DISTS)}; "
                           "exponential (a dataset of real conversations, ShareGPT): a running sequence holds the KV "
                           "of its prompt and the whole mean output on average (length-biased), a closed loop's "
                           "prompts arrive one by one rather than in groups, and a finite closed-loop run ends with "
                           "its longest outputs draining at ever smaller batches; uniform (from none to twice the "
                           "mean: SGLang bench_serving's random dataset without --random-range-ratio): the same, with "
                           "2/3 of a mean output held and a drain bounded by twice the mean", "fixed")
STR_AXES["output_dist"] = OUTPUT_DISTS
AXES = AXES + tuple(RUN_AXES)
DEFAULTS.update({k: default for k, (_, default) in RUN_AXES.items()})


@dataclass(frozen=True)
class System:
    """A hardware system with the efficiency profile of its generation."""

    hardware_id: str
    spec: HardwareSpec
    eff: EfficiencyProfile


@dataclass(frozen=True)
class SweepSpec:
    models: dict[str, ModelSpec]
    systems: dict[str, System]
    axes: dict[str, list[Any]]
    serving: ServingProfile
    enforce_max_position: bool = True  # input+output beyond the model's context is an invalid point

    @property
    def n_points(self) -> int:
        per = math.prod(len(v) for v in self.axes.values())
        return per * len(self.models) * len(self.systems)


def _as_list(key: str, value: Any) -> list[Any]:
    if type(value) in _PLAIN_SCALARS:  # one value (estimate): no Sequence ABC check: 3-9% of estimate_many
        return [value]
    if isinstance(value, np.ndarray):  # numpy arrays (np.arange, np.linspace) and ranges are lists too
        value = value.tolist() if value.ndim else value.item()
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        value = [v.strip() for v in value[1:-1].split(",") if v.strip()]
    if isinstance(value, (list, tuple)) or (isinstance(value, Sequence) and not isinstance(value, str)):
        values = list(value)
        if not values:
            raise SpecError("sweep", key, value, "a value or a non-empty list")
        return values
    return [value]


_PLAIN_SCALARS = frozenset({int, float, bool, type(None)})


def check_axis(key: str, value: Any) -> list[Any]:
    """Validate one axis; returns its values as a list (a scalar becomes a one-element list)."""
    values = _as_list(key, value)
    if key in EP_AXES:
        return [_ep_value(key, v) for v in values]
    if key in SPEC_AXES and key not in STR_AXES:
        return [_spec_value(key, v) for v in values]
    if key in RUN_AXES and key not in STR_AXES:
        return [_run_value(key, v) for v in values]
    if key in STR_AXES:
        allowed = (DTYPE_AUTO, *STR_AXES[key]) if key == "dtype" else STR_AXES[key]
        for v in values:
            if v not in allowed:
                raise SpecError("sweep", key, v, allowed)
        return values
    if key in FLOAT_AXES:
        return [_positive_float(key, v) for v in values]
    out = []
    for v in values:
        if isinstance(v, str) and v.strip().lstrip("+").isdigit():
            v = int(v)
        if isinstance(v, np.integer):
            v = int(v)
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise SpecError("sweep", key, v, f"a positive integer or a list of them ({INT_AXES[key]})")
        out.append(check_size(key, v, "sweep"))
    return out


def _positive_float(key: str, v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        f = float("nan")
    if isinstance(v, bool) or not np.isfinite(f) or f <= 0:
        raise SpecError("sweep", key, v, f"a positive number or a list of them ({FLOAT_AXES[key]})")
    return f


def _ep_value(key: str, v: Any) -> Any:
    """One value of an EP_AXES key: dp_attention a bool, redundant_experts an int >= 0, expert_imbalance
    a number >= 1 (strings from the CLI parsed)."""
    if isinstance(v, str):
        text = v.strip().lower()
        v = {"true": True, "false": False}.get(text, text)
        if isinstance(v, str):
            try:
                v = float(v)
            except ValueError:
                pass
    if key == "dp_attention":
        if isinstance(v, (bool, np.bool_)) or v in (0, 1):
            return bool(v)
    elif key == "redundant_experts":
        if not isinstance(v, bool) and isinstance(v, (int, float, np.integer, np.floating)) and float(v) >= 0 \
                and float(v).is_integer():
            return int(v)
    elif not isinstance(v, bool) and isinstance(v, (int, float, np.integer, np.floating)) and float(v) >= 1:
        return float(v)
    raise SpecError("sweep", key, v, EP_AXES[key][0])


def _spec_value(key: str, v: Any) -> Any:
    """One value of a numeric SPEC_AXES key (strings from the CLI parsed): spec_num_tokens an integer >= 0,
    spec_acceptance a number >= 0, prefix_cache_hit_rate a fraction in [0, 1]."""
    try:
        f = float(v.strip() if isinstance(v, str) else v)
    except (TypeError, ValueError):
        f = float("nan")
    ok = not isinstance(v, bool) and np.isfinite(f) and f >= 0
    if key == "spec_num_tokens" and ok and f.is_integer():
        return check_size(key, int(f), "sweep")
    if key == "prefix_cache_hit_rate" and ok and f <= 1:
        return f
    if key == "spec_acceptance" and ok:
        return f
    raise SpecError("sweep", key, v, SPEC_AXES[key][0])


def _run_value(key: str, v: Any) -> int:
    """One value of a RUN_AXES key: an integer >= 0 (strings from the CLI parsed)."""
    try:
        f = float(v.strip() if isinstance(v, str) else v)
    except (TypeError, ValueError):
        f = float("nan")
    if not isinstance(v, bool) and np.isfinite(f) and f >= 0 and f.is_integer():
        return check_size(key, int(f), "sweep")
    raise SpecError("sweep", key, v, RUN_AXES[key][0])


def _check_speculation(axes: Mapping[str, list[Any]]) -> None:
    """A speculating point needs k >= 1 draft tokens (spec_num_tokens), whatever the other axes."""
    methods, ks = axes.get("spec_method", ["none"]), axes.get("spec_num_tokens", [0])
    if any(m != "none" for m in methods) and min(ks) < 1:
        raise SpecError("sweep", "spec_num_tokens", min(ks), f"an integer >= 1 (draft tokens per verify step) "
                        f"when spec_method is {[m for m in methods if m != 'none'][0]!r}")


def check_axes(raw: Mapping[str, Any]) -> dict[str, list[Any]]:
    """All axes with defaults filled in; kv_dtype/embedding_tp None mean 'the serving profile's recipe'
    and 'tp'. The load is the strongest of LOADS given (request_rate, concurrency, batch_size)."""
    unknown = sorted(set(raw) - set(AXES))
    if unknown:
        raise SpecError("sweep", unknown[0], raw[unknown[0]], f"unknown key; valid keys: {list(AXES)}")
    for key in ("input_seq", "output_seq"):
        if raw.get(key) is None:
            raise SpecError("sweep", key, None, f"required: {INT_AXES[key]}")
    given = [k for k in LOADS if raw.get(k) is not None]
    if not given:
        raise SpecError("sweep", "batch_size", None, "a load: batch_size, concurrency or request_rate")
    if "request_rate" in given and "concurrency" in given:
        raise SpecError("sweep", "concurrency", raw["concurrency"],
                        "one load per run: request_rate (open loop) or concurrency (closed loop), not both")
    raw = {k: v for k, v in raw.items() if k not in LOADS or k == given[0]}
    axes: dict[str, list[Any]] = {}
    for key in AXES:
        if key in LOADS and key != given[0]:
            continue
        value = raw.get(key, DEFAULTS.get(key))
        if value is None:
            if DEFAULTS.get(key, 0) is not None:  # only kv_dtype / embedding_tp may be left unset
                raise SpecError("sweep", key, None, f"a value: {INT_AXES.get(key, 'one of ' + str(STR_AXES.get(key)))}")
            continue
        axes[key] = check_axis(key, value)
    _check_speculation(axes)
    if given[0] == "batch_size" and max(axes.get("num_requests", [0])) > 0:
        raise SpecError("sweep", "num_requests", max(axes["num_requests"]), "0 under batch_size (a fixed running "
                        "batch has no run length); a benchmark run's length goes with concurrency or request_rate")
    return axes


def model_spec(model: str | ModelSpec | Mapping[str, Any]) -> tuple[str, ModelSpec]:
    """(id, spec) of a catalog id, a local HuggingFace config path / model directory / hub id, a
    ModelSpec, or an inline mapping: a HuggingFace config.json (it has ``architectures`` or
    ``model_type``) or ModelSpec fields."""
    if isinstance(model, ModelSpec):
        return model.name, model
    if isinstance(model, Mapping):
        if "architectures" in model or "model_type" in model:
            spec = model_from_config(model, str(model.get("name") or ""), "inline model")
        else:
            spec = model_from_dict(dict(model), "inline model")
        return spec.name, spec
    if not isinstance(model, str):
        raise SpecError("arguments", "model", model, "a model id, a config.json path or a config mapping")
    spec = load_model(model)
    local = config_path(model) if not has("model", model) else None
    return (model_id_of(local) if local is not None else model), spec


def resolve_models(model: str | Sequence[str] | ModelSpec | Mapping[str, Any]) -> dict[str, ModelSpec]:
    if isinstance(model, (ModelSpec, Mapping)):
        return dict([model_spec(model)])
    return dict(model_spec(m) for m in _as_list("model", model))


def system_efficiency(hw: HardwareSpec, serving: ServingProfile) -> EfficiencyProfile:
    """The efficiency constants of ``hw`` running ``serving``: fitted to that engine's measured kernel
    tables where the hardware has them (``device.kernel_tables``), else the generation's profile."""
    return load_engine_efficiency(hw.device.generation, hw.device.kernel_tables, serving.kernel_tables)


def checkpoint_recipe(model: ModelSpec, hw: HardwareSpec) -> dict[str, str]:
    """The dtypes ``dtype=auto`` gives ``model`` on ``hw`` (``ModelSpec.recipe``): a 4-bit checkpoint
    format on a device without FP4 tensor cores runs weight-only (``w4a16``: 4-bit weights, bf16 math),
    as vLLM and SGLang serve MXFP4 experts on Hopper and Ampere."""
    fp4 = "fp4" in hw.device.peak_tflops
    return {k: ("w4a16" if PEAK_KEY.get(v) == "fp4" and not fp4 else v) for k, v in model.recipe.items()}


def resolve_systems(hardware: str | Sequence[str], serving: ServingProfile) -> dict[str, System]:
    out = {}
    for h in _as_list("hardware", hardware):
        hw = load_hardware(h)
        out[h] = System(h, hw, system_efficiency(hw, serving))
    return out


def make_spec(model: Any, hardware: Any, axes: Mapping[str, Any], serving: str | ServingProfile = "vllm",
              enforce_max_position: bool = True, **overrides: Any) -> SweepSpec:
    """Build and validate a SweepSpec from ids (or lists of ids) and raw axis values."""
    profile = resolve_serving(serving, **overrides)
    return SweepSpec(resolve_models(model), resolve_systems(hardware, profile), check_axes(axes), profile,
                     enforce_max_position)


#: Serving-profile fields a caller may replace for one run (None = the profile's value).
SERVING_OVERRIDES = ("batching", "comm_overlap", "max_prefill_tokens", "memory_reserve_fraction", "draft_model",
                     "max_num_seqs", "max_num_batched_tokens")
#: The overrides that are the engine's launch limits (``vllm serve --max-num-seqs --max-num-batched-tokens``,
#: TensorRT-LLM's max_batch_size / max_num_tokens): scheduler fields, stated for every device.
SCHEDULER_OVERRIDES = ("max_num_seqs", "max_num_batched_tokens")


def resolve_serving(serving: str | ServingProfile, **overrides: Any) -> ServingProfile:
    """``_resolve_serving``, built once per profile id and overrides (as ``load_serving`` loads a profile once):
    calls with the same values share one profile object, so ``estimate_many`` evaluates them together."""
    if isinstance(serving, str):
        given = tuple(sorted((k, v) for k, v in overrides.items() if v is not None))
        try:
            return _resolved_by_id(serving, given)
        except TypeError:  # an unhashable value: resolved (and its error named) without the cache
            pass
    return _resolve_serving(serving, **overrides)


@functools.lru_cache(maxsize=256)
def _resolved_by_id(serving_id: str, given: tuple[tuple[str, Any], ...]) -> ServingProfile:
    return _resolve_serving(serving_id, **dict(given))


def _resolve_serving(serving: str | ServingProfile, **overrides: Any) -> ServingProfile:
    """A serving profile by id (``conf/serving/``), with ``overrides`` (fields of SERVING_OVERRIDES)
    replacing the profile's values where they are not None; errors name the field. A stated
    ``memory_reserve_fraction`` is the whole reserve: the profile's own (its KV-cache memory fraction,
    SGLang's MiB formula) no longer applies. ``max_num_seqs`` and ``max_num_batched_tokens`` are the
    engine's launch limits as stated (the running-sequence cap, and the step's token budget, which is
    also the prefill chunk): they replace the profile's and its per-device defaults (``device_rules``)."""
    if not isinstance(serving, ServingProfile):
        if not isinstance(serving, str):
            raise SpecError("arguments", "serving", serving, ids("serving"))
        serving = load_serving(serving)
    unknown = sorted(set(overrides) - set(SERVING_OVERRIDES))
    if unknown:
        raise SpecError("arguments", unknown[0], overrides[unknown[0]], f"valid keys: {list(SERVING_OVERRIDES)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    if given.get("draft_model") is not None and given["draft_model"] not in ids("model"):
        raise SpecError("arguments", "spec_draft_model", given["draft_model"], ids("model"))
    if not given:
        return serving
    data = asdict(serving)
    data.update(given)
    if "memory_reserve_fraction" in given:  # a stated reserve (--mem-fraction-static, gpu_memory_utilization)
        # replaces the engine's own: its formula and its KV-cache fraction
        data["memory_reserve"] = {}
        data["scheduler"] = {**data["scheduler"], "kv_cache_memory_fraction": 0.0}
    stated = {k: data.pop(k) for k in SCHEDULER_OVERRIDES if k in data}
    for key, value in stated.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise SpecError("arguments", key, value, "a whole number >= 1")
        stated[key] = int(value)
    if stated:
        data["scheduler"] = {**data["scheduler"], **stated}
        data["device_rules"] = [{**rule, **{k: 0 for k in stated}} for rule in data["device_rules"]]
        if "max_num_batched_tokens" in stated:  # the budget is also the largest prefill chunk
            data["max_prefill_tokens"] = stated["max_num_batched_tokens"]
    return build(ServingProfile, data, f"serving profile {serving.name!r}")
