"""The ideal machine: the same cost model with every achieved fraction at 1 and every fixed cost at 0.

The physics floors of a point (``ttft_floor_ms``, ``tpot_floor_ms``, ``throughput_ceiling_tokens_per_s``)
are its serving mode evaluated on this machine, at the point's plan and load: there is one
implementation of the physics (``costs/``), and the floor is that implementation with the
inefficiencies taken out, so no real measurement of the same work can beat it. What is taken out:

- ``EfficiencyProfile``: GEMM and attention at 100% of the datasheet dense peak of their dtype
  (``gemm_efficiency = attention_efficiency = 1``, no K-loop or head_dim penalty: ``gemm_k_half =
  attention_head_dim_half = 0``, no per-dtype or grouped-MoE GEMM constants); HBM streamed at 100% of its datasheet
  bandwidth (``memory_efficiency = 1``, decode attention too); no fixed cost per kernel, GEMM,
  attention call or collective call; collectives at 100% of the links' datasheet bandwidth (ring,
  in-switch and one-shot algorithms alike; no measured all-reduce fits); the activation cast of an
  8/4-bit GEMM fused away (``gemm_includes_quantize``); an MoE device reads only the experts the
  fewest possible tokens' routing touches (``expert_reads = 'minimal'``: ceil(k / ep) experts; balanced
  random routing reads more, correlated routing can read fewer than that expectation, so the
  expectation is no floor).
- ``DeviceSpec``: one compute unit holding the whole peak, so there is no tile or wave quantization
  and no split-K traffic (``costs.kernels.wave_efficiency`` = 1).
- ``LinkSpec``: no per-hop latency (scale-up and scale-out).
- ``ServingProfile``: collectives overlap compute (only their excess over a layer's kernels shows);
  elementwise traffic fused into neighbouring kernels (RoPE, activation, residual add, KV-cache write,
  attention output copy and quantize kernels move no extra bytes; norms keep their 2 x rows x hidden
  bytes: a norm reads and writes the hidden state once);
  no host time per step or per sequence; the whole device memory holds weights and KV cache
  (``memory_reserve_fraction = 0``, ``kv_cache_memory_fraction = 1``), so the ideal running batch is
  at least the engine's. The scheduler caps (``max_num_seqs``, the token budget) and the batching
  mode are kept: they are the configuration the point describes.
- Axes: no expert load imbalance (``expert_imbalance = 1``).

What stays is the arithmetic a point cannot avoid: weights and KV cache read at least once per step,
the FLOPs of the GEMMs and of causal attention, the bytes a collective must put on a link, and the
serving mode's own structure (prefill before the first token, one decode step per token, queueing
under the stated load). Kernels are still summed one after another (max(compute, memory) per
kernel): a persistent "mega-kernel" that overlaps one layer's memory traffic with the next one's math
could in principle go below that; no serving engine we compare with runs that way (README "Floors").
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mantile.costs.axes import Axes
from mantile.specs.hardware import EfficiencyProfile, HardwareSpec
from mantile.specs.serving import MemoryReserve, ServingProfile

_CACHE: dict[tuple[int, int, int], tuple[object, object, object, HardwareSpec, EfficiencyProfile,
                                          ServingProfile]] = {}


def efficiency(eff: EfficiencyProfile) -> EfficiencyProfile:
    """``eff`` with every achieved fraction 1 and every fixed cost 0 (see module docstring)."""
    return dataclasses.replace(
        eff, name=f"{eff.name}_ideal", gemm_efficiency=1.0, gemm_k_half=0.0, memory_efficiency=1.0,
        kernel_overhead_us=0.0, gemm_overhead_us=0.0, attention_efficiency=1.0, attention_head_dim_half=0.0,
        scale_up_bandwidth_efficiency=1.0, nvls_bandwidth_efficiency=1.0, collective_latency_us=0.0,
        scale_out_bandwidth_efficiency=1.0, gemm_dtypes={}, gemm_includes_quantize=True,
        attention_decode_memory_efficiency=0.0, attention_decode_overhead_us=0.0, all_reduce_fits={},
        moe_gemm_dtypes={},
        expert_reads="minimal", source=f"ideal machine of {eff.name} (mantile/serving/ideal.py)")


def hardware(hw: HardwareSpec) -> HardwareSpec:
    """``hw`` with one compute unit of the whole peak and links without latency."""
    ic = hw.interconnect
    return dataclasses.replace(
        hw, device=dataclasses.replace(hw.device, compute_units=1),
        interconnect=dataclasses.replace(ic, scale_up=dataclasses.replace(ic.scale_up, latency_us=0.0),
                                         scale_out=dataclasses.replace(ic.scale_out, latency_us=0.0)))


def serving(profile: ServingProfile) -> ServingProfile:
    """``profile`` with fused elementwise traffic, overlapped collectives, no host time, all memory."""
    stack = dataclasses.replace(profile.kernels, rope_traffic=0.0, activation_traffic=0.0, residual_kernels=0,
                                kv_write_kernels_prefill=0,
                                kv_write_kernels_decode=0, attention_output_copy=False, quantize_kernels=0)
    sched = dataclasses.replace(profile.scheduler, host_step_us=0.0, host_per_sequence_us=0.0, eager_launch_us=0.0,
                                kv_cache_memory_fraction=1.0)
    return dataclasses.replace(profile, kernels=stack, comm_overlap=True, memory_reserve_fraction=0.0,
                               memory_reserve=MemoryReserve(),
                               scheduler=sched)


def machine(hw: HardwareSpec, eff: EfficiencyProfile, profile: ServingProfile
            ) -> tuple[HardwareSpec, EfficiencyProfile, ServingProfile]:
    """The ideal (hardware, efficiency, serving) of one evaluation, built once per distinct triple."""
    key = (id(hw), id(eff), id(profile))
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is hw and hit[1] is eff and hit[2] is profile:
        return hit[3], hit[4], hit[5]
    out = (hardware(hw), efficiency(eff), serving(profile))
    if len(_CACHE) > 64:
        _CACHE.clear()
    _CACHE[key] = (hw, eff, profile, *out)
    return out


def axes(ax: Axes) -> Axes:
    """``ax`` with perfectly balanced experts."""
    if np.all(np.asarray(ax.expert_imbalance) == 1):
        return ax
    return dataclasses.replace(ax, expert_imbalance=1.0)
