"""The whole system: time to first token, time per output token, throughput, memory, fits.

``evaluate`` takes typed columns (``costs.axes.Axes``: one element per sweep point) for one model on
one hardware system with one serving profile, and returns a typed ``Result`` whose columns are the
results-table contract (DESIGN.md). The serving mode (``serving.MODES``, chosen by the profile's
``batching``) turns per-step costs into TTFT, TPOT and throughput; memory comes from the same blocks.

``ServingProfile.max_prefill_tokens`` bounds the activation memory of a prefill (engines run long
prompts in chunks); the prefill time is computed for the whole batch in one pass, which costs about
the same as the chunks in sequence (the GEMMs are linear in tokens; chunking adds a few launches).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mantile.costs import comm, memory
from mantile.costs.axes import Axes
from mantile.costs.blocks import LAYER_TYPES, PHASES, Plan, Work
from mantile.costs.checks import invalid_codes
from mantile.costs.families import architecture
from mantile.costs.kernels import LATENCY_SUMS, TABLE_SUMS, Array, Cost, any_
from mantile.costs.step import Setup, bound_index, exposed_s, has_unquantized, machine
from mantile.serving import accuracy, continuous, energy, ideal, scheduler, speculative, static
from mantile.serving.base import Steps, Timings, mean_context
from mantile.serving.speculative import Speculation
from mantile.specs.catalog import load_model
from mantile.specs.dtypes import ACTIVATION_BYTES, BYTES_PER_ELEMENT, attention_dtype
from mantile.specs.hardware import EfficiencyProfile, HardwareSpec
from mantile.specs.model import ModelSpec
from mantile.specs.serving import Scheduler, ServingProfile

GB = 1e9


@dataclass(frozen=True)
class Result:
    """Per point metrics (arrays of one evaluation); ``columns()`` gives them as results-table columns.

    Metrics of invalid points are NaN (memory columns stay: they say how far a plan is from fitting).
    Floors (``ttft_floor_ms``, ``tpot_floor_ms``, ``throughput_ceiling_tokens_per_s`` and per device, in
    ``breakdown``) are the same serving mode on the ideal machine (``serving/ideal.py``); the error band
    columns (``ttft_p10_ms`` ... ``band_basis``) come from ``serving/accuracy.py``.
    ``breakdown``: ``{phase}_{layer type}_ms``, ``{phase}_comm_ms``, ``{phase}_flops``, ``{phase}_bytes``
    (one device, its stage's layers, every micro-batch) and ``{phase}_bound`` (index into BOUNDS).
    """

    num_devices: np.ndarray
    ttft_ms: np.ndarray
    tpot_ms: np.ndarray
    e2e_latency_ms: np.ndarray
    throughput_tokens_per_s: np.ndarray
    throughput_tokens_per_s_per_device: np.ndarray
    decode_throughput_tokens_per_s: np.ndarray
    tokens_per_s_per_user: np.ndarray
    weights_gb_per_device: np.ndarray
    kv_cache_gb_per_device: np.ndarray
    activation_gb_per_device: np.ndarray
    memory_gb_per_device: np.ndarray
    usable_memory_gb_per_device: np.ndarray
    fits: np.ndarray
    valid: np.ndarray
    invalid_code: np.ndarray
    max_batch_size: np.ndarray
    kv_cache_budget_gb_per_device: np.ndarray
    breakdown: dict[str, np.ndarray] = field(default_factory=dict)

    def columns(self) -> dict[str, np.ndarray]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "breakdown"}
        out.update(self.breakdown)
        return out


def _mode(serving: ServingProfile, ax: Axes) -> str:
    """static | continuous | scheduler: an engine profile (one with a scheduler), or a closed or open
    loop load, runs the scheduler model; a fixed batch on a plain profile keeps its batching."""
    if serving.batching == "static":
        return "static"
    if serving.scheduler != Scheduler() or ax.load != "batch_size":
        return "scheduler"
    return "continuous"


def _weights(model: ModelSpec, ax: Axes, setup: Setup) -> Array:
    """Weight bytes on the busiest device (``memory.weight_bytes``, expert-parallel keys included)."""
    per = setup.weight_bytes_per_element
    return memory.weight_bytes(model, ax.tp, ax.ep, ax.embedding_tp, ax.pp, per["embedding"], per["attention"],
                               per["feedforward"], ax.dp_attention, ax.redundant_experts,
                               mtp_loaded=ax.is_method("mtp") * 1.0 if model.num_nextn_predict_layers else 0.0)


def _kv_per_sequence(model: ModelSpec, ax: Axes, setup: Setup, held: Array, draft: Setup | None = None,
                     sliding_full: bool = False) -> Array:
    """KV bytes one running sequence of the replica costs a device: with data-parallel attention groups
    (``costs.blocks.Placement``) a device keeps its group's sequences, 1/attention_dp of them. A
    speculating sequence also keeps its k draft tokens' KV and its drafter's cache
    (``speculative.draft_kv_values``)."""
    pl = ax.placement
    tp, share = (pl.attention_tp, pl.attention_dp) if setup.wide_ep else (ax.tp, 1.0)
    spec = Speculation.of(setup)
    if spec.active:
        held = held + spec.q_len - 1.0
    per_group = memory.kv_cache_bytes(model, 1.0, held, tp, ax.pp, ax.cp, setup.kv_bytes_per_element, sliding_full)
    if spec.active:
        per_group = per_group + speculative.draft_kv_values(setup, draft, tp, held) * setup.kv_bytes_per_element / ax.cp
    return per_group / share


@dataclass(frozen=True)
class _Memory:
    """Per-device memory terms of one evaluation, computed once: weights, activation bytes per prefill
    token, fp32 logits per sequence, usable memory, KV bytes one running sequence holds, and the
    largest prefill one step makes (the scheduler's token budget, else the prefill chunk)."""

    weights: Array
    act_per_token: Array
    logits_per_seq: Array
    usable: Array
    kv_per_seq: Array
    step_tokens: float
    #: the engine's reserve already holds the activations (``MemoryReserve``): they take nothing from ``usable``
    act_in_reserve: bool = False
    #: the running-sequence cap the engine's launcher computes per point (``Scheduler.max_num_seqs_rule``)
    seq_cap: Array | None = None

    @property
    def act_for_capacity(self) -> Array:
        """Activation bytes per prefill token that come out of ``usable`` (0 when the reserve holds them)."""
        return 0.0 if self.act_in_reserve else self.act_per_token

    @property
    def free_for_kv(self) -> Array:
        """What weights and one step's prefill activations leave for the KV cache."""
        return self.usable - self.weights - self.step_tokens * self.act_for_capacity

    @property
    def capacity_seqs(self) -> Array:
        """Running sequences whose KV cache (and logits) fit in ``free_for_kv``."""
        return np.floor(np.maximum(self.free_for_kv, 0.0) / (self.kv_per_seq + self.logits_per_seq))


def _memory(model: ModelSpec, hw: HardwareSpec, serving: ServingProfile, ax: Axes, setup: Setup, mode: str,
            draft: Setup | None = None) -> _Memory:
    S, O = ax.input_seq, ax.output_seq  # noqa: E741
    reserve = serving.memory_reserve
    fraction: Array
    if reserve.active:  # the engine's own formula (SGLang): by chunk, CUDA-graph batch, plan and speculation
        drafts = ax.is_method("draft") if ax.speculates else False
        speculates = (~ax.is_method("none") & ~ax.is_method("ngram")) if ax.speculates else False
        fraction = reserve.fraction(hw.device.memory_gib, serving.max_prefill_tokens, ax.tp, ax.pp,
                                    ax.placement.attention_dp, ax.dp_attention, drafts, speculates)
    else:
        fraction = serving.scheduler.kv_cache_memory_fraction or (1 - serving.memory_reserve_fraction)
    # TensorRT-LLM's fraction is of the memory the weights and activations leave: the KV cache takes f of it,
    # so the engine fills M - (1 - f) (M - weights - activations) (``Scheduler.kv_fraction_of``)
    of_free = serving.scheduler.kv_fraction_of == "free" and bool(serving.scheduler.kv_cache_memory_fraction) \
        and not reserve.active
    # KV a running sequence holds: all of input + output (static batching, TRT-LLM's no-evict reservation),
    # or on average input + its age (paged blocks that grow with the sequence): O / 2 with fixed lengths. With
    # lengths that vary (``output_dist``; a scheduler's, static batches run fixed ones) a sequence seen
    # running is length-biased: its age is E[L^2] / (2 E[L]) = (1 + cv^2) O / 2 on average, and its own output,
    # which a no-evict scheduler reserves whole, E[L^2] / E[L] = (1 + cv^2) O (``axes.OUTPUT_CV2``: exponential
    # O and 2 O, uniform from none to 2 O: 2 O / 3 and 4 O / 3; inputs drawn beside them are not length-biased,
    # a prompt's length barely moves how long its request runs). Prefix caching: a sequence holds its whole
    # prompt's blocks, the cached (shared) ones included, counted once per running sequence (an upper bound:
    # sequences that share a prefix share its blocks); cached blocks no running sequence uses sit in the free
    # pool and are evicted first, so they take no capacity.
    bias = 1.0 + ax.output_cv2 if mode == "scheduler" and any_(ax.varied_outputs) else 1.0
    reserves_whole = mode != "scheduler" or serving.scheduler.kv_reserve == "full"
    held = S + (O * bias if reserves_whole else O / 2.0 * bias)
    budget = serving.scheduler.max_num_batched_tokens if mode == "scheduler" else 0
    spec = Speculation.of(setup)
    weights = _weights(model, ax, setup)
    if spec.active:
        weights = weights + speculative.draft_weight_bytes(setup, draft)
    act_token = memory.activation_per_token(model, ax.tp, ax.ep, ax.cp, setup.activation_bytes_per_element)
    step_tokens = float(budget or serving.max_prefill_tokens)
    total = hw.device.memory_bytes
    usable = (total - (1.0 - fraction) * np.maximum(total - weights - step_tokens * act_token, 0.0) if of_free
              else total * fraction)
    return _Memory(
        weights=weights,
        act_per_token=act_token,
        # fp32 logits of every position the LM head scores: k + 1 per sequence in a verify step
        logits_per_seq=model.vocab_size / ax.embedding_tp * 4.0 * spec.q_len,
        usable=usable,
        kv_per_seq=_kv_per_sequence(model, ax, setup, held, draft, serving.scheduler.sliding_kv_full),
        step_tokens=step_tokens, act_in_reserve=reserve.active,
        seq_cap=(scheduler.trtllm_bench_max_batch(model, hw.device.memory_gib, ax)
                 if serving.scheduler.max_num_seqs_rule == "trtllm_bench" else None))


def _timings(mode: str, steps: Steps, serving: ServingProfile, mem: _Memory) -> Timings:
    """The serving mode's timings; the scheduler's running cap includes the KV capacity."""
    if mode == "scheduler":
        return scheduler.timings(steps, serving.scheduler, mem.capacity_seqs, mem.seq_cap,
                                 serving.memory_reserve.graph_batch_at(steps.axes.tp))
    return (static.timings if mode == "static" else continuous.timings)(steps)


def _draft_setup(hw: HardwareSpec, eff: EfficiencyProfile, serving: ServingProfile, ax: Axes,
                 sums: frozenset[str] = frozenset()) -> Setup | None:
    """The draft model's Setup (speculative decoding with ``spec_method=draft``), on the same devices,
    plan and dtypes as the target; None when no point drafts with a model or none is named."""
    if not serving.draft_model or not ax.speculates or not np.any(ax.is_method("draft")):
        return None
    return Setup.of(load_model(serving.draft_model), hw, eff, serving, ax, sums)


def _utilization(mode: str, t: Timings, ax: Axes, tokens_per_step: Array = 1.0) -> np.ndarray:
    """Busy fraction of a device over the steady state (``serving.energy``: per mode). A scheduler step
    lasts TPOT x the tokens it yields per sequence (more than one when speculating)."""
    if mode == "scheduler":
        u = energy.phase_utilization(t.decode.total.busy_s, t.tpot_s * tokens_per_step)
    else:
        u = energy.request_utilization(energy.phase_utilization(t.prefill.total.busy_s, t.prefill.latency_s),
                                       energy.phase_utilization(t.decode.total.busy_s, t.decode.latency_s),
                                       t.ttft_s, t.tpot_s, ax.output_seq)
    if ax.load == "request_rate":
        u = u * energy.open_loop_busy_probability(ax.request_rate / ax.dp * t.e2e_s)  # Little: N = rate x e2e
    return np.asarray(u, dtype=float)


def _floor(model: ModelSpec, hw: HardwareSpec, eff: EfficiencyProfile, serving: ServingProfile, ax: Axes,
           mode: str) -> Timings:
    """The physics floors: the same serving mode at the same plan and load on the ideal machine
    (``serving/ideal.py``: datasheet peaks, no efficiency, no fixed cost, no host time), with the same
    speculation (draft model on the ideal machine too; the acceptance the point states).

    The TPOT floor is at most the decode-only step over the tokens it yields: how often other prompts'
    prefills interleave with a request's decode steps depends on the run (a steady closed loop has them
    all along, a run that sends its requests at once has them up front), so no prefill share can be
    part of a bound that holds whatever the run."""
    i_hw, i_eff, i_serving = ideal.machine(hw, eff, serving)
    i_ax = ideal.axes(ax)
    # only latencies are read of the ideal machine's steps: Costs keep busy, overhead and comm time alone
    setup = Setup.of(model, i_hw, i_eff, i_serving, i_ax, LATENCY_SUMS)
    draft = _draft_setup(i_hw, i_eff, i_serving, i_ax, LATENCY_SUMS)
    steps = Steps(setup, draft)
    t = _timings(mode, steps, i_serving, _memory(model, i_hw, i_serving, i_ax, setup, mode, draft))
    decode_only = np.asarray(t.decode.latency_s) / steps.spec.tokens_per_step
    return dataclasses.replace(t, tpot_s=np.minimum(t.tpot_s, decode_only))


def evaluate(model: ModelSpec, hw: HardwareSpec, eff: EfficiencyProfile, serving: ServingProfile,
             col: Mapping[str, Any] | Axes, enforce_max_position: bool = True) -> Result:
    """Results-table metrics for every point of ``col`` (raw columns, resolved by ``Axes.resolve`` with the
    serving profile's quantization recipe for a KV or embedding dtype left unset)."""
    serving = serving.for_device(hw.device.name, hw.device.memory_gib)  # the engine's defaults on this GPU
    ax = col if isinstance(col, Axes) else Axes.resolve(col, serving.kv_dtype_for, serving.embedding_dtype_for)
    # the steps' Costs keep the sums the table reads (no per-kernel list: ``step_kernels`` has it); the
    # drafter's steps only their latency (``speculative.draft_step_s``)
    # a pass outside CUDA graphs takes at least its launches' host time (``Scheduler.eager_launch_us``)
    setup = Setup.of(model, hw, eff, serving, ax,
                     TABLE_SUMS | {"launches"} if serving.scheduler.eager_launch_us > 0 else TABLE_SUMS)
    draft = _draft_setup(hw, eff, serving, ax, LATENCY_SUMS)
    code = invalid_codes(model, hw, eff, ax, setup.peak_ok, enforce_max_position, has_draft=draft is not None)
    steps = Steps(setup, draft)
    mode = _mode(serving, ax)
    S, O, pp, dp = ax.input_seq, ax.output_seq, ax.pp, ax.dp  # noqa: E741
    pl = ax.placement
    devices = (pl.devices if setup.wide_ep else ax.tp) * ax.cp * pp * dp
    a_bytes = setup.activation_bytes_per_element
    mem = _memory(model, hw, serving, ax, setup, mode, draft)
    w, logits_seq, usable, kv_seq = mem.weights, mem.logits_per_seq, mem.usable, mem.kv_per_seq
    t = _timings(mode, steps, serving, mem)
    floor = _floor(model, hw, eff, serving, ax, mode)
    B = np.asarray(t.running_batch, dtype=float)
    if mode == "static":
        code = np.where((code == 0) & (ax.load == "request_rate"), 12, code).astype(code.dtype)
    code = np.where((code == 0) & ~np.asarray(t.sustainable, dtype=bool), 11, code).astype(code.dtype)
    valid = code == 0

    kv = kv_seq * B
    act = memory.activation_bytes(model, B, S, ax.tp, ax.ep, ax.cp, ax.embedding_tp, a_bytes, mem.step_tokens)
    total = w + kv + act
    # activations inside the engine's reserve (MemoryReserve) take nothing from the weights-and-KV pool
    act_cap = mem.act_for_capacity
    pool = w + kv + (0.0 if mem.act_in_reserve else act)
    biggest = memory.max_batch_size(usable, w, kv_seq, act_cap, logits_seq, S, serving.max_prefill_tokens)
    # KV budget: what is left for the cache at the largest batch (weights, activations out)
    budget = usable - w - np.minimum(biggest * S, serving.max_prefill_tokens) * act_cap - biggest * logits_seq

    scalar = np.ndim(valid) == 0  # one point on numpy scalars (estimate): nothing to broadcast

    def shaped(v: Any) -> Any:
        return v if scalar else np.broadcast_to(v, ax.shape)

    # NaN where the point is not valid: v + (0 or NaN), exact (v + 0.0 == v) and, on a sub-grid's
    # columns, several times cheaper than np.where over v broadcast to the whole shape
    nan_if_invalid = np.where(valid, 0.0, np.nan)

    def timed(v: Any) -> Any:
        return (v if valid else np.nan) if scalar else np.broadcast_to(v + nan_if_invalid, ax.shape)

    breakdown: dict[str, np.ndarray] = {}
    for phase, step in (("prefill", t.prefill), ("decode", t.decode)):
        for kind in LAYER_TYPES:
            breakdown[f"{phase}_{kind}_ms"] = timed(step.by_type[kind].latency_s * 1e3)
        breakdown[f"{phase}_comm_ms"] = timed(step.total.comm_s * 1e3)
        mb = steps.micro_batches if mode != "scheduler" else 1.0  # the scheduler's steps are whole passes
        breakdown[f"{phase}_flops"] = timed(step.total.flops * mb / pp)
        breakdown[f"{phase}_bytes"] = timed(step.total.bytes * mb / pp)
        breakdown[f"{phase}_bound"] = shaped(bound_index(step.total))
    floors = {"ttft_floor_ms": timed(floor.ttft_s * 1e3), "tpot_floor_ms": timed(floor.tpot_s * 1e3),
              "throughput_ceiling_tokens_per_s": timed(floor.throughput_tokens_per_s),
              "throughput_ceiling_tokens_per_s_per_device": timed(floor.throughput_tokens_per_s / devices)}
    ttft, tpot, throughput = timed(t.ttft_s * 1e3), timed(t.tpot_s * 1e3), timed(t.throughput_tokens_per_s)
    pick = lambda v, mean: timed((mean if v is None else v) * 1e3)  # noqa: E731
    context = mean_context(ax.input_seq, ax.output_seq)
    draft_s = steps.draft_s(B if mode == "scheduler" else steps.batch / steps.micro_batches, context)
    breakdown.update(
        decode_draft_ms=timed(np.asarray(draft_s) * 1e3), spec_tokens_per_step=timed(steps.spec.tokens_per_step),
        running_batch=timed(B), request_throughput_per_s=timed(t.throughput_tokens_per_s / O),
        ttft_p50_ms=pick(t.ttft_p50_s, t.ttft_s), ttft_p99_ms=pick(t.ttft_p99_s, t.ttft_s),
        tpot_p50_ms=pick(t.tpot_p50_s, t.tpot_s), tpot_p99_ms=pick(t.tpot_p99_s, t.tpot_s), **floors,
        **accuracy.band_columns(model, hw, serving, ax, ttft, tpot, throughput, floors))
    u = _utilization(mode, t, ax, steps.spec.tokens_per_step)
    power = devices * energy.device_power_w(hw.device.idle_w, hw.device.tdp_w, u)
    breakdown.update(device_utilization=timed(u), power_w=timed(power),
                     energy_j_per_token=timed(energy.energy_j_per_token(power, t.throughput_tokens_per_s)))
    return Result(
        num_devices=shaped(devices),
        ttft_ms=ttft,
        tpot_ms=tpot,
        e2e_latency_ms=timed(t.e2e_s * 1e3),
        throughput_tokens_per_s=throughput,
        throughput_tokens_per_s_per_device=timed(t.throughput_tokens_per_s / devices),
        decode_throughput_tokens_per_s=timed(t.decode_throughput_tokens_per_s),
        tokens_per_s_per_user=timed(1.0 / t.tpot_s),
        weights_gb_per_device=shaped(w / GB),
        kv_cache_gb_per_device=shaped(kv / GB),
        activation_gb_per_device=shaped(act / GB),
        memory_gb_per_device=shaped(total / GB),
        usable_memory_gb_per_device=shaped(usable / GB),
        fits=shaped(valid & (pool <= usable)),
        valid=valid,
        invalid_code=code,
        max_batch_size=shaped(np.where(valid, biggest, 0).astype(np.int64)),
        kv_cache_budget_gb_per_device=shaped(np.maximum(budget, 0) / GB),
        breakdown=breakdown,
    )


def step_kernels(model: ModelSpec, hw: HardwareSpec, eff: EfficiencyProfile, serving: ServingProfile,
                 point: Mapping[str, Any], enforce_max_position: bool = True) -> list[dict[str, Any]]:
    """The named kernels behind one point's TTFT and TPOT: for the prefill and the decode step the
    serving mode costs, every kernel of every block with ``instances`` (how often the block runs in
    the pass) and its time per instance; ``total_ms`` = instances x time_ms sums to the step's time
    (without collective overlap). With speculative decoding the decode step is the verify pass and the
    ``draft`` phase lists the k proposer passes (their total is ``decode_draft_ms``)."""
    serving = serving.for_device(hw.device.name, hw.device.memory_gib)  # as evaluate configures the engine
    ax = Axes.resolve({k: np.asarray([v]) if not isinstance(v, str) else v for k, v in point.items()},
                      serving.kv_dtype_for, serving.embedding_dtype_for)
    setup = Setup.of(model, hw, eff, serving, ax)
    draft = _draft_setup(hw, eff, serving, ax)
    steps = Steps(setup, draft)
    mode = _mode(serving, ax)
    t = _timings(mode, steps, serving, _memory(model, hw, serving, ax, setup, mode, draft))
    rows: list[dict[str, Any]] = []
    parts = [("prefill", 1.0, t.prefill.parts), ("decode", 1.0, t.decode.parts)]
    if steps.spec.active:  # speculative decoding: the k proposer passes of a decode step
        method = str(point.get("spec_method", "none"))
        batch = t.running_batch if mode == "scheduler" else steps.batch / steps.micro_batches
        parts.append(("draft", float(point.get("spec_num_tokens", 0)),
                      speculative.draft_parts(setup, draft, method, batch, mean_context(ax.input_seq, ax.output_seq))))
    for phase, passes, blocks in parts:
        for block, times, c in blocks:
            for k in c.kernels:
                one = float(np.asarray(k.time_s).reshape(-1)[0])
                rows.append({"phase": phase, "layer_type": block.layer_type, "block": type(block).__name__,
                             "kernel": k.name, "instances": passes * times, "time_ms": one * 1e3,
                             "total_ms": passes * times * one * 1e3, "bound": k.bound})
    return rows


def layer_cost(model: ModelSpec, hw: HardwareSpec, eff: EfficiencyProfile, serving: ServingProfile, layer_type: str,
               phase: str, batch: float, seq_length: float, kv_length: float, tp: float = 1, cp: float = 1,
               sp: float = 1, ep: float = 1, dtype: str = "bf16", kv_dtype: str | None = None,
               q_len: float = 1.0) -> Cost:
    """One instance of ``layer_type`` on one device (the per-layer breakdown behind ``evaluate``).

    prefill: batch x seq_length new tokens attending causally to themselves;
    decode: ``q_len`` new tokens for each of ``batch`` sequences, over a cache of kv_length tokens.
    The Cost lists the layer's named kernels (``Cost.kernels``); their times sum to ``latency_s``.
    """
    kv_dtype = kv_dtype or dtype
    # the same machine a step's layer computing in ``dtype`` runs on (per-dtype and grouped GEMM constants)
    m, _ = machine(hw, eff, serving, dtype, attention_dtype(dtype, kv_dtype), model.weight_block_size > 0,
                   unquantized=has_unquantized(model, layer_type),
                   ep=ep if layer_type == "feedforward" and model.is_moe else 1.0)
    net = comm.Network.of(hw, eff)
    q, kv_len = (seq_length, seq_length) if phase == "prefill" else (q_len, kv_length)
    w = Work(phase, batch, q, kv_len, BYTES_PER_ELEMENT[dtype], ACTIVATION_BYTES[dtype],
             BYTES_PER_ELEMENT[kv_dtype], tp=tp, cp=cp, sp=sp, ep=ep, logits_rows=batch)
    arch = architecture(model)
    if layer_type == "embedding":
        return arch.embedding.cost(m, w, net)
    for block, _ in arch.layer_blocks():
        if block.layer_type == layer_type:
            return block.cost(m, w, net)
    raise ValueError(f"{model.name} has no {layer_type} block")


__all__ = ["GB", "PHASES", "Plan", "Result", "evaluate", "exposed_s", "layer_cost"]
