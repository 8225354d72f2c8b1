"""One forward pass (a step) of the whole model on one device: the blocks' named kernels, summed.

``Setup`` resolves, once per evaluation, what every step shares: the machine each layer type runs
on (the peak of its dtype), bytes per element of weights, activations and KV cache, and the network.
``forward`` runs one (micro-)batch through the model's architecture (``families``) and returns a
``StepCost``: the Cost of each layer type over the whole model, the total, and the latency with the
serving profile's collective overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mantile.costs import comm
from mantile.costs.axes import Axes, StrColumn, lookup, map_pairs
from mantile.costs.blocks import LAYER_TYPES, Block, Work
from mantile.costs.families import Architecture, architecture
from mantile.costs.kernels import BOUNDS, Array, Cost, Machine
from mantile.specs.dtypes import (
    ACTIVATION_BYTES,
    BLOCK_SCALED_FP8,
    BYTES_PER_ELEMENT,
    DTYPES,
    PEAK_KEY,
    QUANTIZES_INPUT,
    UNQUANTIZED,
    attention_dtype,
)
from mantile.specs.hardware import EfficiencyProfile, GemmConstants, HardwareSpec
from mantile.specs.model import ModelSpec
from mantile.specs.serving import ServingProfile

#: The sums of a step's total that the results table reads, and its kernel launches (where the machines keep
#: them: an eager pass's host time, ``Scheduler.eager_launch_us``).
TOTAL_SLOTS = ("flops", "bytes", "busy_s", "compute_bound_s", "overhead_s", "comm_s", "launches")
#: The machine (dtype peak) each layer type computes on: norms run beside attention.
MACHINE_OF = {"attention": "attention", "feedforward": "feedforward", "norm": "attention", "embedding": "embedding"}


#: one point's machines (``machine`` with a single dtype, attention format and ep): the same inputs give the
#: same frozen Machine, so ``estimate`` builds each once per (hardware, profiles, formats, ep), not twice per
#: call (the step's machines and the floor's). Keyed by the specs' identities, which each entry keeps alive.
_SCALAR_MACHINES: dict[tuple[Any, ...], tuple[tuple[object, ...], tuple[Machine, np.ndarray]]] = {}
_SCALAR_MACHINES_MAX = 512


def machine(hw: HardwareSpec, eff: EfficiencyProfile, serving: ServingProfile, dtype: StrColumn,
            attention: StrColumn, block_scaled: bool = False, sums: frozenset[str] = frozenset(),
            unquantized: bool = False, ep: Array = 1.0) -> tuple[Machine, np.ndarray]:
    """(the machine a layer computing in ``dtype`` runs on, whether the device has that dtype's peak), per
    point (see ``_machine``); one point's (string formats, a scalar ep) is memoized."""
    if not (isinstance(dtype, str) and isinstance(attention, str) and np.ndim(ep) == 0):
        return _machine(hw, eff, serving, dtype, attention, block_scaled, sums, unquantized, ep)
    key = (id(hw), id(eff), id(serving), dtype, attention, block_scaled, sums, unquantized, float(ep))
    hit = _SCALAR_MACHINES.get(key)
    if hit is not None and hit[0][0] is hw and hit[0][1] is eff and hit[0][2] is serving:
        return hit[1]
    out = _machine(hw, eff, serving, dtype, attention, block_scaled, sums, unquantized, ep)
    if len(_SCALAR_MACHINES) >= _SCALAR_MACHINES_MAX:
        _SCALAR_MACHINES.clear()
    _SCALAR_MACHINES[key] = ((hw, eff, serving), out)
    return out


def _machine(hw: HardwareSpec, eff: EfficiencyProfile, serving: ServingProfile, dtype: StrColumn,
             attention: StrColumn, block_scaled: bool, sums: frozenset[str], unquantized: bool,
             ep: Array) -> tuple[Machine, np.ndarray]:
    """(the machine a layer computing in ``dtype`` runs on, whether the device has that dtype's peak), per
    point: the dtype's peak, its dense and grouped (MoE) GEMM constants, the peak of the format attention
    computes in (``attention``), and the activation-quantize kernel where the serving stack launches one
    and the GEMM constants do not already include it. ``block_scaled``: the checkpoint's FP8 weights carry
    one scale per block (``ModelSpec.weight_block_size``), so its fp8 GEMMs are the engine's block-scaled
    kernel (``BLOCK_SCALED_FP8`` constants where fitted: per-token-group activation scales, a lighter
    quantize than the per-tensor kernel's, e.g. 3 us fixed cost instead of 12 on TensorRT-LLM B200).
    ``sums``: the running sums its Costs keep (``Machine.sums``; empty: all, with the named kernels).
    ``unquantized``: with the bf16 machine of the GEMMs that stay in 16 bits (``Machine.unquantized``,
    ``has_unquantized``). ``ep``: the expert-parallel size its grouped (MoE expert) GEMMs run at (``ep_scale``)."""
    peaks = {d: hw.device.peak_tflops[k] * 1e12 for d, k in PEAK_KEY.items() if k in hw.device.peak_tflops}
    formats = (dtype,) if isinstance(dtype, str) and dtype in DTYPES else DTYPES  # one point: its format only
    gemm = {d: eff.gemm_constants(d) for d in formats}
    if block_scaled and "fp8" in gemm and BLOCK_SCALED_FP8 in eff.gemm_dtypes:
        gemm["fp8"] = eff.gemm_dtypes[BLOCK_SCALED_FP8]
    moe = {d: eff.moe_gemm_constants(d) for d in formats}
    peak, attn_peak = lookup(dtype, peaks), lookup(attention, peaks)
    quantizes = serving.kernels.quantize_kernels > 0 and not eff.gemm_includes_quantize

    def constants(table: dict[str, GemmConstants]) -> tuple[Array, Array, Array]:
        return (lookup(dtype, {d: g.gemm_efficiency for d, g in table.items()}),
                lookup(dtype, {d: g.gemm_k_half for d, g in table.items()}),
                lookup(dtype, {d: g.gemm_overhead_us * 1e-6 for d, g in table.items()}))

    efficiency, k_half, fixed_s = constants(gemm)
    # a fused-MoE kernel's own weight-streaming rate where fitted (0: the generation's memory efficiency)
    moe_mem = {d: g.memory_efficiency or eff.memory_efficiency for d, g in moe.items()}
    moe_bytes_per_s = (None if all(v == eff.memory_efficiency for v in moe_mem.values())
                       else hw.device.hbm_bandwidth_bytes_per_s * lookup(dtype, moe_mem))
    moe_op_s = lookup(dtype, {d: g.op_overhead_us * 1e-6 for d, g in moe.items()})
    moe_slice_half = lookup(dtype, {d: g.slice_width_half for d, g in moe.items()})
    m = Machine(np.where(np.isfinite(peak), peak, 1.0), hw.device.hbm_bandwidth_bytes_per_s, hw.device.compute_units,
                eff, serving.kernels, gemm_efficiency=efficiency, gemm_k_half=k_half, gemm_overhead_s=fixed_s,
                attention_peak_flops_per_s=np.where(np.isfinite(attn_peak), attn_peak, 1.0),
                quantize=lookup(dtype, QUANTIZES_INPUT) if quantizes else 0.0, moe_gemm=constants(moe),
                moe_bytes_per_s=moe_bytes_per_s, moe_op_s=moe_op_s, moe_ep_scale=ep_scale(moe, dtype, ep),
                moe_slice_half=moe_slice_half, sums=sums,
                unquantized=machine(hw, eff, serving, UNQUANTIZED, attention, False, sums)[0] if unquantized else None)
    return m, np.isfinite(peak)


def ep_scale(moe: dict[str, GemmConstants], dtype: StrColumn, ep: Array) -> Array:
    """A grouped GEMM's efficiency on a device of an ``ep``-wide expert-parallel group over its format's ep = 1
    efficiency, per point: ``GemmConstants.ep_efficiency`` / gemm_efficiency, 1 at ep = 1, linear in log2(ep)
    between the fitted sizes and the largest fitted size's beyond it; 1 for a format without fitted sizes."""
    x = np.log2(np.maximum(np.asarray(ep, dtype=float), 1.0))
    scale: Array = 1.0
    for d, g in moe.items():
        if g.ep_efficiency:
            sizes = sorted(g.ep_efficiency)
            ratios = [1.0, *(g.ep_efficiency[e] / g.gemm_efficiency for e in sizes)]
            ratio = np.interp(x, [0.0, *np.log2(sizes)], ratios)
            scale = scale + lookup(dtype, {k: float(k == d) for k in moe}) * (ratio - 1.0)
    return scale


def has_unquantized(model: ModelSpec, kind: str) -> bool:
    """Whether blocks of layer type ``kind`` hold GEMMs a quantized checkpoint leaves in 16 bits
    (``Machine.unquantized``): an MoE router (every engine builds it unquantized: SGLang's ``MoEGate`` a
    plain bf16 parameter, vLLM's gate a ``ReplicatedLinear`` with ``quant_config=None``, TensorRT-LLM's
    DeepSeek gate in bf16 with an fp32 output), and the attention projections ``quantization_excludes``
    names."""
    return (kind == "feedforward" and model.is_moe) or (kind == "attention" and bool(model.quantization_excludes))


@dataclass(frozen=True)
class Setup:
    """What every step of one evaluation shares (see module docstring)."""

    model: ModelSpec
    arch: Architecture
    axes: Axes
    machines: dict[str, Machine]
    weight_bytes_per_element: dict[str, np.ndarray]
    activation_bytes_per_element: np.ndarray
    kv_bytes_per_element: np.ndarray
    net: comm.Network
    peak_ok: np.ndarray
    comm_overlap: bool
    #: any point with data-parallel attention, ep > tp, redundant experts or an expert imbalance (else
    #: every block takes the plain tp path); decided once per evaluation
    wide_ep: bool

    @classmethod
    def of(cls, model: ModelSpec, hw: HardwareSpec, eff: EfficiencyProfile, serving: ServingProfile,
           ax: Axes, sums: frozenset[str] = frozenset()) -> Setup:
        """``sums``: the running sums the steps' Costs keep (``Machine.sums``; empty: all, with the named
        kernels, as the per-kernel breakdowns need)."""
        machines, w_bytes, peak_ok = {}, {}, np.asarray(True)
        attn = map_pairs(ax.dtype, ax.kv_dtype, attention_dtype)
        for kind in ("attention", "feedforward", "embedding"):
            dtype = ax.layer_dtype(kind)
            machines[kind], ok = machine(hw, eff, serving, dtype, attn, model.weight_block_size > 0, sums,
                                         unquantized=has_unquantized(model, kind),
                                         ep=ax.ep if kind == "feedforward" and model.is_moe else 1.0)
            peak_ok = peak_ok & ok
            w_bytes[kind] = lookup(dtype, BYTES_PER_ELEMENT)
        w_bytes["norm"] = w_bytes["embedding"]
        kv = lookup(ax.kv_dtype, BYTES_PER_ELEMENT)
        wide_ep = bool(np.any(np.asarray(ax.dp_attention) > 0) or np.any(ax.ep > ax.tp)
                       or np.any(np.asarray(ax.redundant_experts) > 0) or np.any(np.asarray(ax.expert_imbalance) != 1))
        return cls(model, architecture(model), ax, machines, w_bytes, lookup(ax.dtype, ACTIVATION_BYTES), kv,
                   comm.Network.of(hw, eff), peak_ok & np.isfinite(kv), serving.comm_overlap, wide_ep)

    def tp_of(self, layer_type: str) -> np.ndarray:
        return self.axes.embedding_tp if layer_type == "embedding" else self.axes.tp


@dataclass(frozen=True)
class StepCost:
    """One step on one device: per layer type (whole model), the total, and the exposed latency."""

    by_type: dict[str, Cost]
    total: Cost
    latency_s: Array
    #: every block's Cost (with its named kernels) and how often it runs in the pass
    parts: tuple[tuple[Block, float, Cost], ...] = ()


def exposed_s(c: Cost, overlap: bool) -> Array:
    """A layer's time; with overlap its collectives hide behind its own kernels (only the excess shows)."""
    if not overlap:
        return c.latency_s
    return c.busy_s + c.overhead_s + np.maximum(c.comm_s - c.busy_s, 0.0)


def block_cost(s: Setup, block: Block, phase: str, batch: Array, q_len: Array, kv_len: Array,
               mixed_seqs: Array = 0.0, mixed_len: Array = 0.0, logits_rows: Array = 0.0,
               mixed_kv: Array = 0.0) -> Cost:
    """One instance of ``block`` for one pass. ``batch`` is the replica's; with expert parallelism over
    data-parallel attention (``blocks.Placement``) an expert-parallel block sees the whole replica's
    tokens over R devices and every other block its attention group's share."""
    ax, kind = s.axes, block.layer_type
    tp: Array = s.tp_of(kind)
    expert = getattr(block, "expert_parallel", False)
    # the dense blocks of an MoE model are split over all tp devices, not tp / ep
    ep, extra = (ax.ep if expert or not s.model.is_moe else 1.0), {}
    if s.wide_ep:
        pl = ax.placement
        extra = dict(attention_dp=pl.attention_dp, expert_imbalance=ax.expert_imbalance,
                     redundant_experts=ax.redundant_experts)
        if expert:
            tp = pl.devices
        else:
            tp = pl.attention_tp if kind != "embedding" else tp
            # whole sequences per group; prompts prefilled alongside (a fraction per step) on average
            batch, mixed_seqs, logits_rows = (pl.group_batch(batch), mixed_seqs / pl.attention_dp,
                                              pl.group_batch(logits_rows))
            extra["attention_dp"] = 1.0
    w = Work(phase, batch, q_len, kv_len, s.weight_bytes_per_element[kind], s.activation_bytes_per_element,
             s.kv_bytes_per_element, tp=tp, cp=ax.cp, sp=ax.sp, ep=ep, mixed_prefill_seqs=mixed_seqs,
             mixed_prefill_len=mixed_len, mixed_prefill_kv=mixed_kv, logits_rows=logits_rows, **extra)
    return block.cost(s.machines[MACHINE_OF[kind]], w, s.net)


def forward(s: Setup, phase: str, batch: Array, q_len: Array, kv_len: Array, mixed_seqs: Array = 0.0,
            mixed_len: Array = 0.0, mixed_kv: Array = 0.0) -> StepCost:
    """One forward pass of one (micro-)batch through every block: ``batch`` sequences of ``q_len`` new
    tokens over ``kv_len`` keys; ``mixed_seqs`` prompts of ``mixed_len`` new tokens (over ``mixed_kv``
    keys with a prefix-cache hit) ride along a decode pass (continuous batching). The LM head runs on the
    last position of each prompt and on every new token of a decode pass (q_len > 1 is the verify step of
    speculative decoding, which needs the logits of every draft position)."""
    by_type = {kind: Cost() for kind in LAYER_TYPES}
    total, latency = Cost(), np.asarray(0.0)
    blocks: list[tuple[Block, float]] = [*s.arch.layer_blocks(), (s.arch.embedding, 1.0), (s.arch.final_norm, 1.0)]
    parts = []
    for block, times in blocks:
        rows = batch * q_len if phase == "decode" else batch
        c = block_cost(s, block, phase, batch, q_len, kv_len, mixed_seqs, mixed_len, logits_rows=rows,
                       mixed_kv=mixed_kv)
        by_type[block.layer_type].add(c, times)
        total.add(c, times, TOTAL_SLOTS)
        latency = latency + times * np.asarray(exposed_s(c, s.comm_overlap))
        parts.append((block, times, c))
    return StepCost(by_type, total, latency, tuple(parts))


def bound_index(c: Cost) -> np.ndarray:
    """Index into BOUNDS of the largest share of a step: compute-bound kernels, memory-bound
    kernels, communication, or fixed per-kernel overhead."""
    parts = np.stack(np.broadcast_arrays(c.compute_bound_s, c.busy_s - c.compute_bound_s, c.comm_s,
                                         c.overhead_s))
    return np.argmax(parts, axis=0).astype(np.int8)


__all__ = ["BOUNDS", "Setup", "StepCost", "block_cost", "bound_index", "forward"]
