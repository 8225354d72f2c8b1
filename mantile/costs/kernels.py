"""Time of one kernel on one device, and the accumulator that sums kernels into a layer.

Every kernel costs ``max(compute_s, memory_s) + kernel_overhead`` (DESIGN.md: roofline with achieved
efficiency plus a fixed GPU-side cost per launch). All arguments may be numpy arrays (one element per
sweep point) or scalars; nothing here loops over points.

Sources: roofline model (Williams et al., CACM 2009); wave quantization and split-K as in the
CUTLASS/cuBLAS documentation ("GEMM tile quantization"); FlashAttention FLOP counts from
Dao et al. 2022 (4 * b * h * s_q * s_kv * d for QK^T and PV).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mantile.specs.dtypes import unquantized_bytes
from mantile.specs.hardware import EfficiencyProfile
from mantile.specs.stack import KernelStack

Array = np.ndarray | float


@dataclass(frozen=True)
class Machine:
    """The device as the cost functions see it: per-point peak FLOP/s, bandwidth and constants.

    The GEMM constants and the attention peak may be per point (arrays): a dtype column selects each
    point's GEMM constants (``EfficiencyProfile.gemm_constants``) and the format attention computes in
    (``dtypes.attention_dtype``). ``quantize`` is 1 where each GEMM's 16-bit input is first quantized
    to the weight format by a kernel of its own, else 0.
    """

    peak_flops_per_s: Array  # dense peak of the compute dtype, per point
    hbm_bytes_per_s: float  # datasheet HBM bandwidth
    compute_units: int  # SMs / CUs
    eff: EfficiencyProfile
    stack: KernelStack
    gemm_efficiency: Array | None = None  # None: eff.gemm_efficiency
    gemm_k_half: Array | None = None  # None: eff.gemm_k_half
    gemm_overhead_s: Array | None = None  # None: eff.gemm_overhead_us
    attention_peak_flops_per_s: Array | None = None  # None: peak_flops_per_s
    quantize: Array = 0.0
    #: (efficiency, k_half, fixed seconds) of grouped (MoE expert) GEMMs, per point; None: ``gemm``'s
    #: (``EfficiencyProfile.moe_gemm_constants``: fitted to an engine's measured fused-MoE tables)
    moe_gemm: tuple[Array, Array, Array] | None = None
    #: bytes/s at which grouped (MoE expert) GEMMs stream their weights, per point (the fitted
    #: ``GemmConstants.memory_efficiency`` of the format x HBM bandwidth); None: ``achieved_bytes_per_s``
    moe_bytes_per_s: Array | None = None
    #: seconds a fused-MoE op takes beyond its grouped GEMMs and activation (its routing, permute and finalize
    #: kernels: ``GemmConstants.op_overhead_us`` of the format), per point; 0 where not fitted
    moe_op_s: Array = 0.0
    #: grouped (MoE expert) GEMM efficiency on the point's expert-parallel device over the format's ep = 1
    #: efficiency (``costs.step.ep_scale``: ``GemmConstants.ep_efficiency``), per point; 1 where not fitted
    moe_ep_scale: Array = 1.0
    #: the width at which a tensor-parallel slice of each expert halves the grouped GEMM's efficiency relative to
    #: the whole expert's (``GemmConstants.slice_width_half`` of the format), per point; 0 where not fitted
    moe_slice_half: Array = 0.0
    #: the running sums a Cost keeps of kernels on this machine (``SUMS``; fewer where a caller reads
    #: only some, e.g. the results table or the physics floors: ``TABLE_SUMS``, ``LATENCY_SUMS``); the
    #: named kernel list is kept only with every sum (the per-kernel breakdowns read it)
    sums: frozenset[str] = frozenset()  # empty: every sum
    #: the machine of the GEMMs that stay in 16 bits whatever the layer's dtype (``costs.step.has_unquantized``:
    #: an MoE router, the projections ``ModelSpec.quantization_excludes`` names): bf16 peak and GEMM
    #: constants; None where a layer type has none
    unquantized: Machine | None = None

    def kept_16bit(self, w_bytes: Array) -> tuple[Machine, Array]:
        """(machine, weight bytes per element) of a GEMM that stays in 16 bits whatever the layer's dtype: the
        ``unquantized`` machine and ``dtypes.unquantized_bytes``; this machine and ``w_bytes`` where it has none."""
        if self.unquantized is None:
            return self, w_bytes
        return self.unquantized, unquantized_bytes(w_bytes)

    @property
    def keeps_all(self) -> bool:
        return not self.sums

    @property
    def gemm(self) -> tuple[Array, Array, Array]:
        """(efficiency, k_half, fixed seconds) of this machine's GEMMs."""
        e = self.eff
        return (e.gemm_efficiency if self.gemm_efficiency is None else self.gemm_efficiency,
                e.gemm_k_half if self.gemm_k_half is None else self.gemm_k_half,
                e.gemm_overhead_us * 1e-6 if self.gemm_overhead_s is None else self.gemm_overhead_s)

    @property
    def attention_peak(self) -> Array:
        return self.peak_flops_per_s if self.attention_peak_flops_per_s is None else self.attention_peak_flops_per_s

    @property
    def achieved_bytes_per_s(self) -> float:
        return self.hbm_bytes_per_s * self.eff.memory_efficiency

    @property
    def overhead_s(self) -> float:
        return self.eff.kernel_overhead_us * 1e-6


BOUNDS = ("compute", "memory", "communication", "overhead")


@dataclass(frozen=True)
class KernelCost:
    """One named kernel (or collective) of a layer on one device, ``launches`` times.

    ``time_s = max(compute_s, memory_s) + overhead_s + comm_s``: a GPU kernel has compute and memory
    times and a fixed launch overhead; a collective has only ``comm_s`` (the exposed part). Bytes are
    split by kind: weights read, KV cache read or written, the rest activations.
    """

    name: str
    launches: Array
    flops: Array
    weight_bytes: Array
    kv_bytes: Array
    activation_bytes: Array
    compute_s: Array
    memory_s: Array
    overhead_s: Array
    comm_bytes: Array = 0.0
    comm_s: Array = 0.0

    @property
    def bytes(self) -> Array:
        return self.weight_bytes + self.kv_bytes + self.activation_bytes

    @property
    def time_s(self) -> Array:
        return np.maximum(self.compute_s, self.memory_s) + self.overhead_s + self.comm_s

    @property
    def bound(self) -> str:
        """What the kernel's time is mostly spent on (one point: scalars)."""
        busy = float(np.max(np.maximum(self.compute_s, self.memory_s)))
        parts = {"compute": busy if float(np.max(self.compute_s)) > float(np.max(self.memory_s)) else 0.0,
                 "memory": busy if float(np.max(self.compute_s)) <= float(np.max(self.memory_s)) else 0.0,
                 "communication": float(np.max(self.comm_s)), "overhead": float(np.max(self.overhead_s))}
        return max(parts, key=lambda k: parts[k])


class Cost:
    """The named kernels of one layer on one device, and their running sums.

    ``busy_s`` is the sum over kernels of max(compute, memory); ``compute_bound_s`` the part of it
    spent in compute-bound kernels. ``latency_s = busy_s + overhead_s + comm_s`` = the sum of the
    kernels' ``time_s``. Of ``bytes``, ``weight_bytes`` are weights read and ``kv_bytes`` KV-cache reads
    and writes; the rest are activations.
    """

    def __init__(self) -> None:
        self.flops: Array = 0.0
        self.bytes: Array = 0.0
        self.weight_bytes: Array = 0.0
        self.kv_bytes: Array = 0.0
        self.compute_s: Array = 0.0
        self.memory_s: Array = 0.0
        self.busy_s: Array = 0.0
        self.compute_bound_s: Array = 0.0
        self.overhead_s: Array = 0.0
        self.launches: Array = 0.0
        self.comm_bytes: Array = 0.0
        self.comm_s: Array = 0.0
        self.kernels: list[KernelCost] = []

    def kernel(self, m: Machine, name: str, flops: Array, nbytes: Array, compute_s: Array, count: Array = 1.0,
               extra_s: Array = 0.0, weight_bytes: Array = 0.0, kv_bytes: Array = 0.0,
               bytes_per_s: Array | None = None) -> None:
        """Add kernel ``name``: ``count`` launches moving ``nbytes`` (of which ``weight_bytes`` weights and
        ``kv_bytes`` KV cache) and doing ``flops`` in total; ``extra_s`` is a fixed cost of this kernel on
        top of the launch overhead (a GEMM's pipeline fill and drain); ``bytes_per_s`` replaces the
        machine's streaming rate for this kernel."""
        memory_s = nbytes / (m.achieved_bytes_per_s if bytes_per_s is None else bytes_per_s)
        t = np.maximum(compute_s, memory_s)
        overhead = count * m.overhead_s + extra_s
        self.busy_s = self.busy_s + t
        self.overhead_s = self.overhead_s + overhead
        if m.keeps_all:
            self.weight_bytes = self.weight_bytes + weight_bytes
            self.kv_bytes = self.kv_bytes + kv_bytes
            self.compute_s = self.compute_s + compute_s
            self.memory_s = self.memory_s + memory_s
            self.kernels.append(KernelCost(name, count, flops, weight_bytes, kv_bytes,
                                           nbytes - weight_bytes - kv_bytes, compute_s, memory_s, overhead))
        if m.keeps_all or "launches" in m.sums:  # an eager pass's host time (``Scheduler.eager_launch_us``)
            self.launches = self.launches + count
        if m.keeps_all or "flops" in m.sums:  # the results table's flops, bytes and bound columns
            self.flops = self.flops + flops
            self.bytes = self.bytes + nbytes
            self.compute_bound_s = self.compute_bound_s + (compute_s > memory_s) * t

    def elementwise(self, m: Machine, name: str, nbytes: Array, count: Array, kv_bytes: Array = 0.0,
                    weight_bytes: Array = 0.0) -> None:
        """Memory-bound kernels (norm, RoPE, activation, residual, copies, lookups): bytes only, no FLOPs."""
        memory_s = nbytes / m.achieved_bytes_per_s
        overhead = count * m.overhead_s
        self.busy_s = self.busy_s + memory_s
        self.overhead_s = self.overhead_s + overhead
        if m.keeps_all:
            self.weight_bytes = self.weight_bytes + weight_bytes
            self.kv_bytes = self.kv_bytes + kv_bytes
            self.memory_s = self.memory_s + memory_s
            self.kernels.append(KernelCost(name, count, 0.0, weight_bytes, kv_bytes, nbytes - kv_bytes - weight_bytes,
                                           0.0, memory_s, overhead))
        if m.keeps_all or "launches" in m.sums:
            self.launches = self.launches + count
        if m.keeps_all or "bytes" in m.sums:
            self.bytes = self.bytes + nbytes

    def comm(self, name: str, nbytes: Array, seconds: Array) -> None:
        """Add a collective: ``nbytes`` count only where it takes time (a group of one sends nothing)."""
        sent = (seconds > 0) * nbytes
        self.comm_bytes = self.comm_bytes + sent
        self.comm_s = self.comm_s + seconds
        self.kernels.append(KernelCost(name, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, sent, seconds))

    def include(self, other: Cost) -> Cost:
        """Add ``other``'s kernels to this layer (sums and the kernel list)."""
        self.add(other)
        self.kernels.extend(other.kernels)
        return self

    def include_where(self, other: Cost, keep: Array) -> Cost:
        """Add ``other``'s kernels to this layer at the points where ``keep``, nothing elsewhere (sums
        through ``np.where``: exact where kept, and a NaN or a launch overhead of the dropped points
        never leaks in). Kernels that run only for some points of an evaluation (a prefill chunk riding
        a decode pass) go through it, so that a point's cost does not depend on the other points it is
        evaluated with (one point alone skips them: ``any_``)."""
        for name in SUMS:
            value = getattr(other, name)
            if not (isinstance(value, float) and value == 0.0):  # nothing to add (a sum its machine does not keep)
                setattr(self, name, getattr(self, name) + np.where(keep, value, 0.0))
        self.kernels.extend(other.kernels)
        return self

    def add(self, other: Cost, times: Array = 1.0, slots: tuple[str, ...] | None = None) -> Cost:
        """Add ``times`` x ``other``'s sums (all, or only ``slots``); the kernel list is not copied."""
        scaled = not (isinstance(times, (int, float)) and times == 1)
        for name in slots or SUMS:
            value = getattr(other, name)
            setattr(self, name, getattr(self, name) + (times * value if scaled else value))
        return self

    @property
    def latency_s(self) -> Array:
        return self.busy_s + self.overhead_s + self.comm_s


#: The running sums of a Cost.
SUMS = ("flops", "bytes", "weight_bytes", "kv_bytes", "compute_s", "memory_s", "busy_s", "compute_bound_s",
        "overhead_s", "launches", "comm_bytes", "comm_s")
#: The sums the results table reads (``serving.system.evaluate``: per-type latencies, flops, bytes, bound,
#: utilization) and the sums a latency needs (the physics floors): ``Machine.sums``; with ``launches`` where
#: a pass outside CUDA graphs takes its host's dispatch time (``Scheduler.eager_launch_us``).
TABLE_SUMS = frozenset({"flops", "bytes", "busy_s", "compute_bound_s", "overhead_s", "comm_s"})
LATENCY_SUMS = frozenset({"busy_s", "overhead_s", "comm_s"})


def any_(x: Array) -> bool:
    """``np.any`` without its dispatch cost on one point's numpy scalars and Python numbers."""
    return bool(x.any()) if isinstance(x, (np.ndarray, np.generic)) else bool(x)


def wave_efficiency(m: Machine, rows: Array, cols: Array, depth: Array, groups: Array = 1.0) -> tuple[Array, Array]:
    """(fraction of compute units a GEMM keeps busy, split-K factor): tile quantization with split-K.

    tiles = ceil(rows/tile_m) * ceil(cols/tile_n) per group, times ``groups``: a grouped GEMM (one group
    per local expert) schedules every group's tiles over the compute units in one launch; when tiles <
    units, split-K cuts K into at most depth / split_k_min_depth slices; work units are spread in waves
    over the compute units and the last, partial wave wastes the rest: efficiency = units / (ceil(units /
    CUs) * CUs).
    """
    e = m.eff
    tiles = np.ceil(rows / e.gemm_tile_m) * np.ceil(cols / e.gemm_tile_n) * groups
    split = np.maximum(np.minimum(np.floor(m.compute_units / np.maximum(tiles, 1)),
                                  np.floor(depth / e.gemm_split_k_min_depth)), 1.0)
    units = np.maximum(tiles * split, 1.0)  # a GEMM with no rows (an empty batch) does no work anyway
    return units / (np.ceil(units / m.compute_units) * m.compute_units), split


def gemm(cost: Cost, m: Machine, rows: Array, cols: Array, depth: Array, w_bytes: Array, a_bytes: Array,
         groups: Array = 1.0, weight_groups: Array | None = None, name: str = "gemm", grouped: bool = False,
         efficiency_scale: Array = 1.0) -> None:
    """``groups`` GEMMs [rows x depth] @ [depth x cols] (weights), e.g. one per local expert; ``grouped``:
    one grouped-GEMM kernel (fused MoE), with the machine's ``moe_gemm`` constants and its bytes at the
    machine's ``moe_bytes_per_s`` (a fused-MoE kernel's own weight-streaming rate, where fitted).

    flops = 2 * rows * cols * depth per group; bytes = weights (depth*cols*w_bytes per weight group)
    + input rows*depth + output rows*cols activations. Achieved compute rate = peak * gemm_efficiency *
    depth / (depth + gemm_k_half) * wave_efficiency: the K-loop amortizes each tile's prologue and
    epilogue, and the last wave of tiles leaves compute units idle. ``efficiency_scale`` multiplies the
    efficiency (``Machine.moe_ep_scale`` for the experts of an expert-parallel device).
    """
    wg = groups if weight_groups is None else weight_groups
    if any_(m.quantize):  # the 16-bit input is cast to the weight format first (one kernel)
        q = m.quantize * rows * depth * groups
        cost.elementwise(m, f"{name}_quantize", q * (a_bytes + w_bytes), m.quantize * m.stack.quantize_kernels)
    efficiency, k_half, fixed_s = m.moe_gemm if grouped and m.moe_gemm is not None else m.gemm
    flops = 2.0 * rows * cols * depth * groups
    waves, split = wave_efficiency(m, rows, cols, depth, groups)
    # split-K writes fp32 partial tiles and reduces them in a second kernel
    partials = (split > 1) * (8.0 * split * rows * cols * groups)
    weights = depth * cols * w_bytes * wg
    nbytes = weights + (rows * depth + rows * cols) * a_bytes * groups + partials
    rate = m.peak_flops_per_s * efficiency * efficiency_scale * depth / (depth + k_half) * waves
    cost.kernel(m, name, flops, nbytes, flops / rate, count=1.0 + (split > 1), extra_s=fixed_s, weight_bytes=weights,
                bytes_per_s=m.moe_bytes_per_s if grouped else None)


def attention_core(cost: Cost, m: Machine, batch: Array, q_len: Array, kv_len: Array, heads: Array,
                   kv_heads: Array, head_dim: float, a_bytes: Array, kv_bytes: Array, causal: bool,
                   count: float, split_kv: bool = False,
                   kv_eff: Array | None = None, name: str = "attention", decode: bool = False,
                   cache_values_per_token: Array | None = None) -> None:
    """Flash attention (no S x S matrix in HBM): QK^T and PV on tensor cores.

    flops = 4 * batch * heads * q_len * kv_eff * head_dim, kv_eff = kv_len - q_len/2 when causal
    (the masked half is skipped; for q_len = kv_len that is kv_len/2); ``kv_eff`` overrides it (ring
    attention: each device's queries see, on average, half of all keys). Bytes: read Q and K/V once,
    write O; ``cache_values_per_token`` replaces 2 * kv_heads * head_dim where K and V share storage
    (MLA's latent). Achieved rate = peak * attention_efficiency * head_dim / (head_dim + head_dim_half) *
    wave efficiency over (batch * heads * ceil(q_len / tile_m)) query tiles; ``split_kv`` (flash
    decoding) also splits the keys across compute units, so the machine is full.
    """
    if kv_eff is None:
        kv_eff = kv_len - q_len / 2.0 if causal else kv_len
    flops = 4.0 * batch * heads * q_len * kv_eff * head_dim
    if cache_values_per_token is None:
        cache = 2.0 * batch * kv_len * kv_heads * head_dim * kv_bytes
    else:
        cache = batch * kv_len * cache_values_per_token * kv_bytes
    nbytes = 2.0 * batch * q_len * heads * head_dim * a_bytes + cache
    e = m.eff
    if split_kv:
        waves = 1.0
    else:
        tiles = batch * heads * np.ceil(q_len / e.gemm_tile_m)
        waves = tiles / (np.ceil(tiles / m.compute_units) * m.compute_units)
    rate = m.attention_peak * e.attention_efficiency * head_dim / (head_dim + e.attention_head_dim_half)
    # decode: the engine's attention kernel reads the cache at its own measured rate, if known
    read_rate = (m.hbm_bytes_per_s * e.attention_decode_memory_efficiency
                 if decode and e.attention_decode_memory_efficiency > 0 else None)
    cost.kernel(m, name, flops, nbytes, flops / (rate * waves), count=count, kv_bytes=cache,
                extra_s=e.attention_decode_overhead_us * 1e-6 if decode else 0.0, bytes_per_s=read_rate)
