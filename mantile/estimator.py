"""The Python API: ``estimate``, ``sweep`` and ``layer_metrics``.

Thin front door: it validates arguments (errors name the argument, the value and the valid choices),
then calls the engine (``estimate``/``sweep``) or the layer cost functions (``layer_metrics``).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import polars as pl

from mantile.costs import memory
from mantile.costs.axes import Axes
from mantile.costs.blocks import LAYER_TYPES, PHASES
from mantile.costs.checks import INVALID_FIELDS, invalid_codes, reason_messages
from mantile.costs.kernels import KernelCost
from mantile.engine.bounds import check_size
from mantile.engine.dataset import scratch_path
from mantile.engine.runner import KEEP_IN_MEMORY_MAX_POINTS, EngineSettings, run
from mantile.engine.spec import (
    DTYPE_AUTO,
    SweepSpec,
    System,
    check_axis,
    checkpoint_recipe,
    make_spec,
    model_spec,
    resolve_serving,
    system_efficiency,
)
from mantile.engine.table import results_row, results_rows
from mantile.serving import ideal, system
from mantile.specs import EfficiencyProfile, ModelSpec, SpecError, load_hardware
from mantile.specs.dtypes import BYTES_PER_ELEMENT
from mantile.specs.speculative import tokens_from_rates

PLAN_KEYS = {
    "attention": ("tensor_parallel", "context_parallel", "dtype"),
    "feedforward": ("tensor_parallel", "sequence_parallel", "expert_parallel", "dtype"),
    "norm": ("tensor_parallel", "dtype"),
    "embedding": ("tensor_parallel", "dtype"),
}


def plan_from_layers(layers: Mapping[str, Mapping[str, Any]], dtype: str) -> dict[str, Any]:
    """Per-layer-type plan (the product brief's ``layers`` body) -> global keys of the cost model.

    attention.tensor_parallel -> tp, attention.context_parallel -> cp; feedforward.tensor_parallel must
    equal tp / expert_parallel (experts are spread over the tp group); feedforward.sequence_parallel
    (1 or tp) and norm.tensor_parallel (1 = replicated norms, tp = sequence-parallel norms) -> sp;
    embedding.tensor_parallel -> embedding_tp (vocab-parallel embedding + LM head).
    ``norm.dtype`` is accepted for the brief's body; norms run in the activation dtype. A layer dtype
    not given follows ``dtype`` (the embedding: the serving profile's quantization recipe).
    """
    if not isinstance(layers, Mapping):
        raise SpecError("arguments", "layers", layers, f"a mapping of layer type to plan, keys {list(PLAN_KEYS)}")
    for kind, body in layers.items():
        if kind not in PLAN_KEYS:
            raise SpecError("layers", kind, body, list(PLAN_KEYS))
        if not isinstance(body, Mapping):
            raise SpecError("layers", kind, body, f"a mapping with keys {list(PLAN_KEYS[kind])}")
        for k in body:
            if k not in PLAN_KEYS[kind]:
                raise SpecError("layers", f"{kind}.{k}", body[k], f"valid keys: {list(PLAN_KEYS[kind])}")
    get = lambda kind, key, default: layers.get(kind, {}).get(key, default)  # noqa: E731
    tp = _int("layers.attention.tensor_parallel", get("attention", "tensor_parallel", 1))
    cp = _int("layers.attention.context_parallel", get("attention", "context_parallel", 1))
    ep = _int("layers.feedforward.expert_parallel", get("feedforward", "expert_parallel", 1))
    ff_tp = _int("layers.feedforward.tensor_parallel", get("feedforward", "tensor_parallel", tp // max(ep, 1) or 1))
    if ff_tp * ep != tp:
        raise SpecError("layers", "feedforward.tensor_parallel", ff_tp,
                        f"must equal attention.tensor_parallel / feedforward.expert_parallel = {tp}/{ep} "
                        "(the feedforward runs on the attention's tensor-parallel devices)")
    sp = _int("layers.feedforward.sequence_parallel", get("feedforward", "sequence_parallel", 1))
    norm_tp = _int("layers.norm.tensor_parallel", get("norm", "tensor_parallel", 1))
    for name, v in (("feedforward.sequence_parallel", sp), ("norm.tensor_parallel", norm_tp)):
        if v not in (1, tp):
            raise SpecError("layers", name, v, f"1 (replicated) or {tp} (sequence parallel over the tp group)")
    return {
        "tp": tp, "cp": cp, "ep": ep, "sp": max(sp, norm_tp),
        "embedding_tp": _int("layers.embedding.tensor_parallel", get("embedding", "tensor_parallel", tp)),
        **{f"{kind}_dtype": _dtype(f"layers.{kind}.dtype", get(kind, "dtype", None))
           for kind in ("attention", "feedforward", "embedding") if get(kind, "dtype", None) is not None},
    }


def _int(name: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return check_size(name, value)
    raise SpecError("arguments", name, value, "a positive integer")


def _dtype(name: str, value: Any) -> str:
    try:
        return check_axis("dtype", value)[0]
    except SpecError as e:
        raise SpecError("arguments", name, value, e.allowed) from None


def _scalar(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def estimate(model: Any, hardware: str, batch_size: int | None = None, input_seq: int | None = None,
             output_seq: int | None = None, tp: int = 1,
             pp: int = 1, dp: int = 1, ep: int = 1, cp: int = 1, sp: int = 1, dtype: str | None = None,
             kv_dtype: str | None = None, embedding_tp: int | None = None,
             layers: Mapping[str, Mapping[str, Any]] | None = None, serving: str = "vllm",
             comm_overlap: bool | None = None, max_prefill_tokens: int | None = None,
             memory_reserve_fraction: float | None = None, breakdown: bool = True,
             efficiency: EfficiencyProfile | None = None, enforce_max_position: bool = True,
             batching: str | None = None, concurrency: int | None = None,
             request_rate: float | None = None, dp_attention: bool = False, redundant_experts: int = 0,
             expert_imbalance: float = 1.0, spec_method: str = "none", spec_num_tokens: int = 0,
             spec_acceptance: float | Sequence[float] = 0.0, spec_draft_model: str | None = None,
             prefix_cache_hit_rate: float = 0.0, num_requests: int = 0, output_dist: str = "fixed",
             max_num_seqs: int | None = None, max_num_batched_tokens: int | None = None) -> dict[str, Any]:
    """One point -> one results-table row as a dict (units in the keys; the columns of
    ``help(mantile.sweep)``). The load is one of ``batch_size`` (a fixed running batch), ``concurrency``
    (clients in a closed loop) or ``request_rate`` (Poisson arrivals, requests/s).

    ``model``: a catalog id, a local HuggingFace config.json / model directory / hub id (local cache
    only), a ModelSpec, or an inline config mapping. ``dtype`` None or ``auto`` takes the checkpoint's
    quantization (``ModelSpec.recipe``: fp8 for DeepSeek-V3, fp4 experts for GPT-OSS's mxfp4), else
    bf16. ``dp_attention``, ``redundant_experts``, ``expert_imbalance``: expert parallelism with
    data-parallel attention (``costs.blocks.Placement``).

    ``layers`` is the product brief's per-layer-type plan; when given it sets tp, cp, sp, ep,
    embedding_tp and per-layer dtypes (see ``plan_from_layers``). Invalid plans return a row with
    ``valid=False`` and a ``reason``; malformed arguments raise ``SpecError``. ``efficiency``
    replaces the hardware generation's profile (used by the calibration fit);
    ``enforce_max_position=False`` accepts prompts longer than the model's context (timing studies);
    ``serving`` is a profile id of ``conf/serving/`` (kernel stack, batching, memory reserve); ``batching``,
    ``comm_overlap``, ``max_prefill_tokens`` and ``memory_reserve_fraction`` replace its values when given;
    ``max_num_seqs`` and ``max_num_batched_tokens`` are the engine's launch limits when stated (vLLM's
    ``--max-num-seqs``/``--max-num-batched-tokens``, TensorRT-LLM's max_batch_size/max_num_tokens, SGLang's
    ``--max-running-requests`` and the smaller of ``--chunked-prefill-size`` and ``--max-prefill-tokens``):
    the running-sequence cap (per attention-DP rank where the engine caps per rank) and the step's token
    budget, replacing the profile's defaults on every device.

    Speculative decoding (``mantile.serving.speculative``): ``spec_method`` none | draft | eagle | mtp |
    ngram, ``spec_num_tokens`` k draft tokens per verify step, ``spec_acceptance`` 0 (the method's default,
    ``conf/speculative.yaml``), one acceptance rate per position in (0, 1), a mean acceptance length >= 1
    (tokens per verify step, the bonus token counted), or a list of per-position rates (the first k
    used); ``spec_draft_model`` a catalog model id (spec_method=draft). ``prefix_cache_hit_rate``: the
    fraction of prompt tokens found in the prefix cache (prefill computes only the misses).

    ``num_requests``: the length of a benchmark run (0, the default: a steady state). With ``concurrency``
    the clients' first requests arrive at once, and TTFT (mean and percentiles) and throughput are the
    run's (``serving.queueing``); with ``request_rate`` the run lasts until its last request finishes.
    ``output_dist``: how the run's output lengths spread about ``output_seq`` (their mean): ``fixed`` (every
    request the same, as synthetic benchmarks send) or ``exponential`` (a dataset of real conversations,
    ShareGPT): then a running sequence holds the KV of its prompt and a whole mean output on average (a
    sequence seen running is length-biased; fixed lengths: half of one), a closed loop's prompts arrive one by
    one as requests end rather than in groups (``queueing._desynced``: TTFT shorter; such a point takes about
    20x an estimate's time), and a finite closed-loop run ends with its longest outputs draining at ever
    smaller batches, which sets its throughput (``queueing._drain``). ``uniform``: from none to twice the mean
    (SGLang bench_serving's random dataset without ``--random-range-ratio``): the same, with 2/3 of a mean
    output held and a drain bounded by twice the mean.
    """
    return _finish(_prepare(dict(locals())))


@dataclass(frozen=True)
class _Point:
    """One ``estimate`` call, checked and resolved up to the cost model: what ``results_row`` takes."""

    model_id: str
    model: ModelSpec
    system: System
    spec: SweepSpec
    point: dict[str, Any]
    breakdown: bool

    def group(self) -> tuple[Any, ...]:
        """Points with equal keys evaluate together as the columns of one ``system.evaluate`` call: the
        same model, hardware, efficiency, serving profile and checks, and the same point keys (a string
        key stays a string)."""
        s = self.system
        return (self.model_id, id(self.model), s.hardware_id, id(s.spec), id(s.eff), id(self.spec.serving),
                self.spec.enforce_max_position,
                tuple((k, isinstance(v, str)) for k, v in self.point.items()))


def _prepare(args: dict[str, Any]) -> _Point:
    """``estimate``'s arguments (all of them, by name) checked and resolved into a ``_Point``."""
    model, hardware, dtype, layers = args["model"], args["hardware"], args["dtype"], args["layers"]
    tp, ep, cp, sp, embedding_tp = args["tp"], args["ep"], args["cp"], args["sp"], args["embedding_tp"]
    spec_method, spec_num_tokens = args["spec_method"], args["spec_num_tokens"]
    model_id, mspec = model_spec(model)
    extra: dict[str, Any] = {}
    if dtype is None or dtype == DTYPE_AUTO:
        recipe = checkpoint_recipe(mspec, load_hardware(hardware))
        dtype = recipe.pop("dtype", "bf16")
        extra = recipe
    axes: dict[str, Any] = {k: args[k] for k in (
        "tp", "pp", "dp", "ep", "cp", "sp", "batch_size", "concurrency", "request_rate", "input_seq", "output_seq")}
    axes.update(dtype=dtype, kv_dtype=args["kv_dtype"], embedding_tp=tp if embedding_tp is None else embedding_tp,
                dp_attention=args["dp_attention"], redundant_experts=args["redundant_experts"],
                expert_imbalance=args["expert_imbalance"], spec_method=spec_method, spec_num_tokens=spec_num_tokens,
                prefix_cache_hit_rate=args["prefix_cache_hit_rate"],
                spec_acceptance=_acceptance(args["spec_acceptance"], spec_num_tokens, spec_method),
                num_requests=args["num_requests"], output_dist=args["output_dist"])
    if layers is not None:
        plan = plan_from_layers(layers, dtype)
        # ``layers`` is the whole per-layer plan: a plan keyword given beside it must agree, not lose silently
        given = {"tp": tp, "ep": ep, "cp": cp, "sp": sp, "embedding_tp": embedding_tp}
        for key, value in given.items():
            if value not in (None, 1) and value != plan[key]:
                raise SpecError("estimate", key, value, f"{plan[key]}, as layers sets it (or leave {key} out)")
        # a layer dtype the plan names wins over the checkpoint recipe's
        extra = {**extra, **{k: plan.pop(k) for k in ("attention_dtype", "feedforward_dtype", "embedding_dtype")
                             if k in plan}}
        axes.update(plan)
    for k, v in axes.items():
        if isinstance(v, (list, tuple)):
            raise SpecError("estimate", k, v, "a single value (use mantile.sweep for lists)")
    spec = make_spec(mspec, hardware, axes, args["serving"], args["enforce_max_position"],
                     batching=args["batching"], comm_overlap=args["comm_overlap"],
                     max_prefill_tokens=args["max_prefill_tokens"],
                     memory_reserve_fraction=args["memory_reserve_fraction"], draft_model=args["spec_draft_model"],
                     max_num_seqs=args["max_num_seqs"], max_num_batched_tokens=args["max_num_batched_tokens"])
    _, sys_ = next(iter(spec.systems.items()))
    if args["efficiency"] is not None:
        sys_ = replace(sys_, eff=args["efficiency"])
    point: dict[str, Any] = {k: v[0] for k, v in spec.axes.items()}
    point.update(extra)
    return _Point(model_id, mspec, sys_, spec, point, bool(args["breakdown"]))


def _finish(p: _Point, row: dict[str, Any] | None = None) -> dict[str, Any]:
    """The point's row (``results_row``, or one ``results_rows`` gave) as ``estimate`` returns it."""
    if row is None:
        row = results_row(p.model_id, p.model, p.system, p.spec, p.point)
    if not p.breakdown:
        row = {k: v for k, v in row.items() if not k.startswith(("prefill_", "decode_")) or k.endswith("bound")}
    return {k: _scalar(v) for k, v in row.items()}


def estimate_many(calls: Sequence[Mapping[str, Any]], errors: str = "raise") -> list[Any]:
    """Many single points at once: ``calls`` is a list of ``estimate`` keyword arguments (one mapping per
    point; any mix of models, hardware, profiles, plans and loads). Returns one row per call, in order,
    each ``estimate(**call)``'s row to 1e-9 relative (its own numbers; not an aggregate).

    Points that share a model, hardware, serving profile and keys run as the columns of one cost-model
    evaluation: about 0.3-0.4 ms a point in groups of 50 (``benchmarks/sweep_speed.py``), where ``estimate``
    takes about 4 ms (the Python overhead of one evaluation is paid once per group). A group of one takes ``estimate``'s
    own path. ``errors="raise"`` raises the first call's error (a ``SpecError`` naming the field);
    ``"return"``: that call's slot holds the exception and the others are answered."""
    if errors not in ("raise", "return"):
        raise SpecError("estimate_many", "errors", errors, ["raise", "return"])
    if isinstance(calls, Mapping) or not isinstance(calls, Sequence):
        raise SpecError("estimate_many", "calls", type(calls).__name__, "a list of estimate() keyword mappings")
    out: list[Any] = [None] * len(calls)
    groups: dict[tuple[Any, ...], list[tuple[int, _Point]]] = {}
    for i, call in enumerate(calls):
        try:
            groups.setdefault((p := _prepare(_arguments(call))).group(), []).append((i, p))
        except Exception as e:  # noqa: BLE001 (one call's error is that call's answer)
            if errors == "raise":
                raise
            out[i] = e
    for members in groups.values():
        try:
            if len(members) == 1:
                rows: list[dict[str, Any] | None] = [None]  # estimate's own (scalar) path
            else:
                first = members[0][1]
                rows = list(results_rows(first.model_id, first.model, first.system, first.spec,
                                         [p.point for _, p in members]))
            for (i, p), row in zip(members, rows, strict=True):
                out[i] = _finish(p, row)
        except Exception as e:  # noqa: BLE001 (a failed evaluation is the answer of every call in it)
            if errors == "raise":
                raise
            for i, _ in members:
                out[i] = e
    return out


_PARAMETERS = inspect.signature(estimate).parameters
#: estimate()'s arguments with a default, and those without one
_DEFAULTS = {k: v.default for k, v in _PARAMETERS.items() if v.default is not inspect.Parameter.empty}
_REQUIRED = tuple(k for k in _PARAMETERS if k not in _DEFAULTS)


def _arguments(call: Mapping[str, Any]) -> dict[str, Any]:
    """One ``estimate_many`` call -> every ``estimate`` argument by name (defaults filled); an unknown or
    missing key is a SpecError naming it."""
    if not isinstance(call, Mapping):
        raise SpecError("estimate_many", "calls[i]", call, "a mapping of estimate() keyword arguments")
    unknown = [k for k in call if k not in _PARAMETERS]
    if unknown:
        raise SpecError("estimate_many", str(unknown[0]), call[unknown[0]],
                        f"an estimate() argument: {list(_PARAMETERS)}")
    missing = [k for k in _REQUIRED if k not in call]
    if missing:
        raise SpecError("estimate_many", missing[0], None, "a value (estimate() requires it)")
    return {**_DEFAULTS, **call}


def _acceptance(value: Any, k: Any, method: Any) -> Any:
    """``spec_acceptance`` of one point: a list of per-position rates becomes the mean tokens per verify
    step it implies for k draft tokens (``specs.speculative.tokens_from_rates``); a number stays."""
    if isinstance(value, (list, tuple, np.ndarray)) and method != "none":
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise SpecError("estimate", "spec_num_tokens", k, "an integer >= 1 (draft tokens per verify step) "
                            f"when spec_method is {method!r}")
        return tokens_from_rates([float(v) for v in value], int(k))
    return value


def sweep(model: Any, hardware: Any, batch_size: Any = None, input_seq: Any = None, output_seq: Any = None,
          tp: Any = 1, pp: Any = 1,
          dp: Any = 1, ep: Any = 1, cp: Any = 1, sp: Any = 1, dtype: Any = "auto", kv_dtype: Any = None,
          embedding_tp: Any = None, serving: str = "vllm", comm_overlap: bool | None = None,
          max_prefill_tokens: int | None = None, memory_reserve_fraction: float | None = None,
          batching: str | None = None, concurrency: Any = None, request_rate: Any = None,
          dp_attention: Any = False, redundant_experts: Any = 0, expert_imbalance: Any = 1.0,
          spec_method: Any = "none", spec_num_tokens: Any = 0, spec_acceptance: Any = 0.0,
          spec_draft_model: str | None = None, prefix_cache_hit_rate: Any = 0.0, num_requests: Any = 0,
          output_dist: Any = "fixed", max_num_seqs: int | None = None, max_num_batched_tokens: int | None = None,
          n_jobs: int = 1, backend: str = "loky", chunk_size: int = 250_000, progress: bool = False
          ) -> pl.DataFrame | pl.LazyFrame:
    """Cross every list given (models, hardware and axes) and evaluate all points as one table.

    Any argument may be a value or a list of values (a list, tuple, ``range`` or numpy array):
    ``batch_size=range(1, 257, 32)``, ``tp=[1, 2, 4, 8]``, ``model=["llama_3.1_8b", "llama_3.3_70b"]``.
    Catalog ids: ``mantile.models()``, ``mantile.hardware()``. ``dtype="auto"`` (the default) runs each
    model in its checkpoint's format (fp8 DeepSeek-V3, fp4-expert GPT-OSS, else bf16), as ``estimate`` does.

    Returns a polars DataFrame, one row per point, up to ``KEEP_IN_MEMORY_MAX_POINTS`` (2M) points;
    beyond, a LazyFrame over a Parquet dataset the workers wrote under ``$TMPDIR`` (deleted at exit;
    ``.collect(engine="streaming")`` or ``.sink_parquet(...)`` it), so memory stays a few chunks
    whatever the grid's size. Columns (units in the names; GB = 1e9 bytes; all in docs/columns.md):

    - identity: model_id, hardware_id, serving, serving_version, num_devices, dtype, kv_dtype, tp, pp, dp,
      ep, cp, sp, embedding_tp, batch_size, concurrency and request_rate (when given), input_seq, output_seq,
      dp_attention, redundant_experts, expert_imbalance (expert parallelism: ``costs.blocks.Placement``),
      spec_method, spec_num_tokens, spec_acceptance, prefix_cache_hit_rate (speculative decoding and
      prefix caching: ``estimate``'s docstring; ``spec_draft_model`` is one id per sweep), num_requests
      (the length of a benchmark run, 0 = a steady state: ``estimate``'s docstring), output_dist (fixed,
      exponential or uniform output lengths about output_seq: ``estimate``'s docstring)
    - speculative decoding: spec_tokens_per_step (mean tokens a decode step yields), decode_draft_ms
    - load: running_batch, request_throughput_per_s, ttft_p50_ms, ttft_p99_ms, tpot_p50_ms, tpot_p99_ms
    - latency and throughput: ttft_ms, tpot_ms, e2e_latency_ms, throughput_tokens_per_s,
      throughput_tokens_per_s_per_device, decode_throughput_tokens_per_s, tokens_per_s_per_user
    - cost (hardware price per device-hour): usd_per_hour, cost_usd_per_million_tokens,
      throughput_tokens_per_s_per_usd_hour
    - energy (device idle power + dynamic up to TDP, ``serving/energy.py``): device_utilization, power_w,
      energy_j_per_token
    - memory per device: weights_gb_per_device, kv_cache_gb_per_device, activation_gb_per_device,
      memory_gb_per_device, usable_memory_gb_per_device, kv_cache_budget_gb_per_device,
      max_batch_size (largest batch that fits)
    - physics floors (the ideal machine, ``serving/ideal.py``): ttft_floor_ms, tpot_floor_ms,
      throughput_ceiling_tokens_per_s, throughput_ceiling_tokens_per_s_per_device
    - 80% error bands (``conf/bands.csv``): ttft_p10_ms, ttft_p90_ms, tpot_p10_ms, tpot_p90_ms,
      throughput_p10_tokens_per_s, throughput_p90_tokens_per_s, band_residuals, band_basis
    - validity: fits, valid, reason (why invalid or not fitting), invalid_field, prefill_bound,
      decode_bound (compute | memory | communication | overhead)
    - per-layer breakdown of one prefill and one decode step (whole model): prefill_attention_ms,
      prefill_feedforward_ms, prefill_norm_ms, prefill_embedding_ms, prefill_comm_ms, prefill_flops,
      prefill_bytes; decode_attention_ms, decode_feedforward_ms, decode_norm_ms, decode_embedding_ms,
      decode_comm_ms, decode_flops, decode_bytes
    """
    axes = dict(tp=tp, pp=pp, dp=dp, ep=ep, cp=cp, sp=sp, batch_size=batch_size, concurrency=concurrency,
                request_rate=request_rate, input_seq=input_seq,
                output_seq=output_seq, dtype=dtype, kv_dtype=kv_dtype, embedding_tp=embedding_tp,
                dp_attention=dp_attention, redundant_experts=redundant_experts, expert_imbalance=expert_imbalance,
                spec_method=spec_method, spec_num_tokens=spec_num_tokens, spec_acceptance=spec_acceptance,
                prefix_cache_hit_rate=prefix_cache_hit_rate, num_requests=num_requests, output_dist=output_dist)
    spec = make_spec(model, hardware, axes, serving, True, batching=batching, comm_overlap=comm_overlap,
                     max_prefill_tokens=max_prefill_tokens, memory_reserve_fraction=memory_reserve_fraction,
                     draft_model=spec_draft_model, max_num_seqs=max_num_seqs,
                     max_num_batched_tokens=max_num_batched_tokens)
    out = scratch_path() if spec.n_points > KEEP_IN_MEMORY_MAX_POINTS else None
    res = run(spec, EngineSettings(n_jobs=n_jobs, backend=backend, chunk_size=chunk_size, progress=progress), out)
    return res.results if res.results is not None else res.lazy()


def layer_metrics(model: Any, hardware: str, layer_type: str, phase: str = "prefill", batch_size: int = 1,
                  seq_length: int = 2048, kv_length: int | None = None, dtype: str = "bf16",
                  kv_dtype: str | None = None, tp: int = 1, cp: int = 1, sp: int = 1, ep: int = 1,
                  serving: str = "vllm", efficiency: EfficiencyProfile | None = None,
                  enforce_max_position: bool = True, kernels: bool = False, q_len: int = 1) -> dict[str, Any]:
    """Cost of ONE instance of a layer type on one device.

    prefill: ``batch_size`` x ``seq_length`` tokens (causal); decode: ``batch_size`` new tokens over a
    KV cache of ``kv_length`` (default ``seq_length``) tokens. Returns flops, bytes (split into
    weight_bytes_read, kv_bytes_read_written, activation_bytes), compute_ms, memory_ms, overhead_ms,
    comm_ms, comm_bytes, latency_ms, bound, kernels, count (instances in the model), latency_floor_ms and
    comm_floor_ms (the same on the ideal machine of ``serving/ideal.py``: no measurement can be faster),
    arithmetic_intensity_flops_per_byte, and the footprint of this instance on one device:
    weights_bytes_per_device, kv_cache_bytes_per_device (attention: this layer's cache for the
    batch), memory_footprint_bytes_per_device. ``q_len``: new tokens per sequence in a decode step (1;
    k + 1 for a speculative-decoding verify step). ``kernels=True`` adds ``named_kernels``: the layer's
    named kernels and collectives (name, launches, flops, bytes by kind, compute/memory/overhead/comm
    and total ms, bound), whose ``time_ms`` sum to ``latency_ms``.
    """
    if layer_type not in LAYER_TYPES:
        raise SpecError("arguments", "layer_type", layer_type, LAYER_TYPES)
    if phase not in PHASES:
        raise SpecError("arguments", "phase", phase, PHASES)
    (model, m), hw = model_spec(model), load_hardware(hardware)
    st = resolve_serving(serving)
    eff = efficiency or system_efficiency(hw, st)
    kv_length = seq_length if kv_length is None else kv_length
    for name, v in (("batch_size", batch_size), ("seq_length", seq_length), ("tp", tp), ("cp", cp),
                    ("sp", sp), ("ep", ep), ("kv_length", kv_length)):
        _int(name, v)
    _int("q_len", q_len)
    dt, kvdt = _dtype("dtype", dtype), _dtype("kv_dtype", kv_dtype or dtype)
    hw.device.peak_flops_per_s(dt)
    _check_plan(m, hw, eff, layer_type, seq_length, kv_length, tp, cp, sp, ep, enforce_max_position)
    c = system.layer_cost(m, hw, eff, st, layer_type, phase, batch_size, seq_length,
                          kv_length, tp=tp, cp=cp, sp=sp, ep=ep, dtype=dt, kv_dtype=kvdt, q_len=q_len)
    # the physics floor of this instance: the same layer on the ideal machine (serving/ideal.py)
    i_hw, i_eff, i_st = ideal.machine(hw, eff, st)
    floor = system.layer_cost(m, i_hw, i_eff, i_st, layer_type, phase, batch_size, seq_length, kv_length, tp=tp,
                              cp=cp, sp=sp, ep=ep, dtype=dt, kv_dtype=kvdt, q_len=q_len)
    count = {"attention": m.num_hidden_layers, "feedforward": m.num_hidden_layers,
             "norm": 2 * m.num_hidden_layers + 1, "embedding": 1}[layer_type]
    tables = 1 if m.tie_word_embeddings or layer_type != "embedding" else 2  # embedding + untied LM head
    weights = float(memory.layer_params(m, layer_type, tp, ep)) * tables * BYTES_PER_ELEMENT[dt]
    cache = 0.0
    if layer_type == "attention":
        cache = float(memory.kv_cache_bytes(m, batch_size, kv_length, tp, m.num_hidden_layers, cp,
                                            BYTES_PER_ELEMENT[kvdt]))
    f = lambda x: float(np.asarray(x))  # noqa: E731
    parts = {"compute": f(c.compute_bound_s), "memory": f(c.busy_s) - f(c.compute_bound_s),
             "communication": f(c.comm_s), "overhead": f(c.overhead_s)}
    out = {
        "model_id": model, "hardware_id": hardware, "layer_type": layer_type, "phase": phase,
        "count": count, "flops": f(c.flops), "bytes": f(c.bytes), "compute_ms": f(c.compute_s) * 1e3,
        "memory_ms": f(c.memory_s) * 1e3, "overhead_ms": f(c.overhead_s) * 1e3, "comm_ms": f(c.comm_s) * 1e3,
        "comm_bytes": f(c.comm_bytes), "latency_ms": f(c.latency_s) * 1e3, "kernels": f(c.launches),
        "weight_bytes_read": f(c.weight_bytes), "kv_bytes_read_written": f(c.kv_bytes),
        "activation_bytes": f(c.bytes) - f(c.weight_bytes) - f(c.kv_bytes),
        "weights_bytes_per_device": weights, "kv_cache_bytes_per_device": cache,
        "memory_footprint_bytes_per_device": weights + cache,
        "bound": max(parts, key=lambda k: parts[k]),
        "arithmetic_intensity_flops_per_byte": f(c.flops) / f(c.bytes) if f(c.bytes) else None,
        "latency_floor_ms": f(floor.latency_s) * 1e3, "comm_floor_ms": f(floor.comm_s) * 1e3,
    }
    if kernels:
        out["named_kernels"] = [kernel_row(k) for k in c.kernels]
    return out


def kernel_row(k: KernelCost) -> dict[str, Any]:
    """One named kernel of a layer as plain numbers (ms, bytes by kind)."""
    f = lambda x: float(np.asarray(x))  # noqa: E731
    return {"name": k.name, "launches": f(k.launches), "flops": f(k.flops), "weight_bytes": f(k.weight_bytes),
            "kv_bytes": f(k.kv_bytes), "activation_bytes": f(k.activation_bytes), "comm_bytes": f(k.comm_bytes),
            "compute_ms": f(k.compute_s) * 1e3, "memory_ms": f(k.memory_s) * 1e3, "overhead_ms": f(k.overhead_s) * 1e3,
            "comm_ms": f(k.comm_s) * 1e3, "time_ms": f(k.time_s) * 1e3, "bound": k.bound}


def _check_plan(m: Any, hw: Any, eff: EfficiencyProfile, layer_type: str, seq_length: int, kv_length: int,
                tp: int, cp: int, sp: int, ep: int, enforce_max_position: bool) -> None:
    """The cost model's own plan checks (``costs.checks.invalid_codes``), raised as an error naming the field.
    Plans only the attention constrains (kv heads, context parallel) are checked for attention."""
    longest = max(seq_length, kv_length)
    ax = Axes.resolve({"tp": [tp], "ep": [ep], "sp": [sp], "cp": [cp if layer_type == "attention" else 1], "pp": [1],
                       "dp": [1], "input_seq": [longest], "output_seq": [0], "batch_size": [1], "dtype": "bf16"})
    code = int(invalid_codes(m, hw, eff, ax, np.asarray([True]), enforce_max_position)[0])
    if code == 2 and layer_type != "attention":
        code = 0
    if code:
        message = reason_messages(m, hw, eff)[code]
        for key, value in (("tp", tp), ("ep", ep), ("sp", sp), ("cp", cp), ("pp", 1)):
            message = message.replace("{" + key + "}", str(value))
        field = INVALID_FIELDS[code]
        if field == "input_seq":
            field = "seq_length" if seq_length >= kv_length else "kv_length"
        if code == 7:  # more devices than the system: the layer's own degrees
            field = "tp"
        value = {"tp": tp, "ep": ep, "sp": sp, "cp": cp}.get(field, longest)
        raise SpecError("arguments", field, value, message)
