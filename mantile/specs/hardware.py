"""HardwareSpec: a device, its scale-up domain and scale-out network, and the efficiency profile."""

from __future__ import annotations

from dataclasses import dataclass, field

from mantile.specs._load import check_ranges, doc
from mantile.specs.errors import SpecError

TOPOLOGIES = ("switch", "fully_connected")
EXPERT_READS = ("expected", "minimal")


def generations() -> list[str]:
    """Valid ``device.generation`` values: the efficiency profiles in ``conf/efficiency/`` (file names).
    Adding a generation is adding a file there; no code edit."""
    from mantile.specs.catalog import ids  # catalog imports this module

    return ids("efficiency")


@dataclass(frozen=True)
class DeviceSpec:
    """One accelerator, datasheet figures (dense peaks: never the 'with sparsity' number)."""

    name: str = field(metadata=doc("marketing name"))
    vendor: str = field(metadata=doc("nvidia | amd | ..."))
    generation: str = field(metadata=doc("architecture generation: a file name in conf/efficiency/"))
    compute_units: int = field(metadata=doc("SMs (NVIDIA) or CUs (AMD)"))
    peak_tflops: dict[str, float] = field(metadata=doc("dense peak TFLOP/s per dtype"))
    memory_gib: float = field(metadata=doc("device-visible memory, GiB (2**30 bytes; nvidia-smi total)"))
    hbm_bandwidth_tb_per_s: float = field(metadata=doc("peak HBM bandwidth, TB/s"))
    source: str = field(metadata=doc("datasheet / document the figures come from"))
    tdp_w: float | None = field(default=None, metadata=doc("board power, W"))
    idle_w: float | None = field(default=None, metadata=doc(
        "power of a device with a serving engine loaded and no work (clocks up, P0), W; the floor of the "
        "energy model (serving/energy.py); null = no energy columns (NaN)"))
    idle_source: str = field(default="", metadata=doc("where idle_w comes from"))
    kernel_tables: str = field(default="", metadata=doc(
        "system name of the measured per-engine kernel tables fitted in conf/efficiency/fitted/ "
        "(<kernel_tables>_<engine>.yaml); empty = the generation's profile for every serving engine"))

    def __post_init__(self) -> None:
        valid = generations()
        if self.generation not in valid:
            raise SpecError("?", "generation", self.generation, valid)
        check_ranges(self, "positive", "compute_units", "memory_gib", "hbm_bandwidth_tb_per_s", "peak_tflops", "tdp_w",
                     "idle_w")
        if self.idle_w is not None and self.tdp_w is not None and self.idle_w > self.tdp_w:
            raise SpecError("?", "idle_w", self.idle_w, f"at most tdp_w ({self.tdp_w} W)")
        if not self.peak_tflops:
            raise SpecError("?", "peak_tflops", self.peak_tflops, "at least one dtype, e.g. {bf16: 989.4}")

    @property
    def memory_bytes(self) -> float:
        return self.memory_gib * 2**30

    @property
    def hbm_bandwidth_bytes_per_s(self) -> float:
        return self.hbm_bandwidth_tb_per_s * 1e12

    def peak_flops_per_s(self, dtype: str) -> float:
        """Dense peak for ``dtype`` (block-scaled 4-bit formats at the fp4 peak); raises SpecError naming
        the dtypes this device has."""
        from mantile.specs.dtypes import PEAK_KEY

        key = PEAK_KEY.get(dtype, dtype)
        if key not in self.peak_tflops:
            raise SpecError(self.name, "dtype", dtype, sorted(self.peak_tflops))
        return self.peak_tflops[key] * 1e12


@dataclass(frozen=True)
class LinkSpec:
    """A network level: the scale-up domain (NVLink/xGMI) or the scale-out network (IB/Ethernet)."""

    name: str = field(metadata=doc("technology"))
    bandwidth_gb_per_s_per_device: float = field(metadata=doc("unidirectional GB/s per device"))
    latency_us: float = field(metadata=doc("small-message latency per step, microseconds"))
    source: str = field(metadata=doc("where the figures come from"))
    domain_size: int = field(default=1, metadata=doc("devices in one domain (scale-up only)"))
    topology: str = field(default="switch", metadata=doc(f"one of {TOPOLOGIES}"))
    link_bandwidth_gb_per_s: float | None = field(default=None, metadata=doc("one link, GB/s per direction"))
    links_per_device: int | None = field(default=None, metadata=doc("links per device"))
    in_network_reduction: bool = field(default=False, metadata=doc("switch reduces (NVLink SHARP)"))

    def __post_init__(self) -> None:
        if self.topology not in TOPOLOGIES:
            raise SpecError("?", "topology", self.topology, TOPOLOGIES)
        if self.topology == "fully_connected" and not (self.link_bandwidth_gb_per_s or self.links_per_device):
            raise SpecError("?", "link_bandwidth_gb_per_s", None,
                            "required for a fully_connected topology (or links_per_device)")
        check_ranges(self, "positive", "bandwidth_gb_per_s_per_device", "link_bandwidth_gb_per_s")
        check_ranges(self, "non_negative", "latency_us")
        check_ranges(self, "at_least_one", "domain_size", "links_per_device")

    @property
    def bandwidth_bytes_per_s(self) -> float:
        return self.bandwidth_gb_per_s_per_device * 1e9

    @property
    def link_bytes_per_s(self) -> float:
        """One link, per direction: as given, else the device bandwidth over its links, else (a switch
        port with no per-link figure) the device bandwidth."""
        if self.link_bandwidth_gb_per_s:
            return self.link_bandwidth_gb_per_s * 1e9
        return self.bandwidth_bytes_per_s / (self.links_per_device or 1)

    @property
    def latency_s(self) -> float:
        return self.latency_us * 1e-6


@dataclass(frozen=True)
class InterconnectSpec:
    scale_up: LinkSpec = field(metadata=doc("the scale-up domain"))
    scale_out: LinkSpec = field(metadata=doc("the network between domains"))


@dataclass(frozen=True)
class SystemSpec:
    num_devices: int = field(metadata=doc("devices in the whole system"))
    price_usd_per_device_hour: float | None = field(default=None, metadata=doc("price per device-hour"))
    price_source: str = field(default="", metadata=doc("where the price comes from"))

    def __post_init__(self) -> None:
        check_ranges(self, "at_least_one", "num_devices")
        check_ranges(self, "non_negative", "price_usd_per_device_hour")


@dataclass(frozen=True)
class GemmConstants:
    """GEMM constants of one number format (see ``EfficiencyProfile``'s gemm_* fields)."""

    gemm_efficiency: float = field(metadata=doc("large-GEMM achieved fraction of this dtype's dense peak"))
    gemm_k_half: float = field(metadata=doc("GEMM depth K at which per-tile fixed work halves efficiency"))
    gemm_overhead_us: float = field(metadata=doc("extra fixed cost of a GEMM, microseconds"))
    memory_efficiency: float = field(default=0.0, metadata=doc(
        "fraction of HBM bandwidth at which the kernel streams its weights (grouped MoE GEMMs fitted to an "
        "engine's tables, e.g. a 4-bit dequantizing kernel); 0 = the generation's memory_efficiency"))
    op_overhead_us: float = field(default=0.0, metadata=doc(
        "grouped (MoE expert) GEMMs: the fused-MoE op's fixed time beyond its GEMM and activation kernels (its "
        "routing, permute and finalize kernels), once per op, microseconds; fitted to an engine's tables"))
    ep_efficiency: dict[int, float] = field(default_factory=dict, metadata=doc(
        "grouped (MoE expert) GEMMs: the efficiency on a device of an expert-parallel group of this size (E/ep "
        "local experts, every token routed on each device), by ep >= 2; fitted to an engine's tables, whose "
        "expert-parallel slices keep less than the ideal 1/ep of the ep = 1 time (costs.feedforward.MoEMLP); "
        "empty: gemm_efficiency at every ep"))
    slice_width_half: float = field(default=0.0, metadata=doc(
        "grouped (MoE expert) GEMMs on a tensor-parallel slice of each expert (f / tp wide): the efficiency times "
        "w / (w + slice_width_half) over the whole expert's f / (f + slice_width_half), w = f / tp "
        "(costs.feedforward.MoEMLP); fitted to an engine's tables; 0: the whole-expert efficiency at every tp"))

    def __post_init__(self) -> None:
        check_ranges(self, "fraction", "gemm_efficiency")
        for ep, value in self.ep_efficiency.items():
            if isinstance(ep, bool) or not isinstance(ep, int) or ep < 2:
                raise SpecError("?", "ep_efficiency", ep, "expert-parallel sizes >= 2 as keys")
            if not 0 < value <= 1:
                raise SpecError("?", f"ep_efficiency.{ep}", value, "a fraction in (0, 1]")
        if self.slice_width_half < 0:
            raise SpecError("?", "slice_width_half", self.slice_width_half, "a width >= 0 (0: none)")
        # gemm_overhead_us may be negative
        check_ranges(self, "non_negative", "gemm_k_half", "memory_efficiency", "op_overhead_us")
        if self.memory_efficiency > 1:
            raise SpecError("?", "memory_efficiency", self.memory_efficiency, "a fraction in (0, 1], or 0")


@dataclass(frozen=True)
class CollectiveFit:
    """A measured collective of one group size: t = latency + wire bytes / bus bandwidth."""

    latency_us: float = field(metadata=doc("fixed time of one call, microseconds"))
    bus_bandwidth_gb_s: float = field(metadata=doc("achieved bus bandwidth, GB/s (nccl-tests busbw)"))

    def __post_init__(self) -> None:
        check_ranges(self, "non_negative", "latency_us")
        check_ranges(self, "positive", "bus_bandwidth_gb_s")


@dataclass(frozen=True)
class EfficiencyProfile:
    """Achieved fractions of peak and fixed costs for one GPU generation and software stack.

    Fitted by ``benchmarks/fit_efficiency.py`` where measurements exist; otherwise priors from
    published measurements (``benchmarks/efficiency_priors.md``). Every field is explained in
    ``mantile/costs/kernels.py`` (and ``conf/efficiency/hopper.yaml``'s header).
    """

    name: str = field(metadata=doc("generation name"))
    gemm_efficiency: float = field(metadata=doc("large-GEMM achieved fraction of dense peak"))
    gemm_k_half: float = field(metadata=doc("GEMM depth K at which per-tile fixed work halves efficiency"))
    gemm_tile_m: int = field(metadata=doc("output tile rows of the GEMM kernels (library default)"))
    gemm_tile_n: int = field(metadata=doc("output tile columns of the GEMM kernels (library default)"))
    gemm_split_k_min_depth: int = field(metadata=doc("smallest K slice split-K gives one compute unit"))
    memory_efficiency: float = field(metadata=doc("streaming fraction of peak HBM bandwidth"))
    kernel_overhead_us: float = field(metadata=doc("fixed GPU-side cost per kernel launch, microseconds"))
    gemm_overhead_us: float = field(metadata=doc("extra fixed cost of a GEMM (pipeline fill/drain), microseconds"))
    attention_efficiency: float = field(metadata=doc("flash-attention fraction of dense peak, large head_dim"))
    attention_head_dim_half: float = field(metadata=doc("head_dim at which attention efficiency halves"))
    scale_up_bandwidth_efficiency: float = field(metadata=doc("achieved fraction of scale-up bandwidth"))
    nvls_bandwidth_efficiency: float = field(metadata=doc("in-switch all-reduce algbw / scale-up bandwidth"))
    collective_latency_us: float = field(metadata=doc("fixed cost of one collective call, microseconds"))
    scale_out_bandwidth_efficiency: float = field(metadata=doc("achieved fraction of scale-out bandwidth"))
    source: str = field(metadata=doc("how the constants were obtained"))
    gemm_dtypes: dict[str, GemmConstants] = field(default_factory=dict, metadata=doc(
        "GEMM constants per number format (fp8, fp4, ...); formats not listed use the gemm_* fields"))
    moe_gemm_dtypes: dict[str, GemmConstants] = field(default_factory=dict, metadata=doc(
        "grouped (fused-MoE expert) GEMM constants per number format, fitted to an engine's measured MoE "
        "tables; formats not listed use the dense GEMM constants"))
    gemm_includes_quantize: bool = field(default=False, metadata=doc(
        "the GEMM constants were measured on a 16-bit input: activation quantization is inside them"))
    attention_decode_memory_efficiency: float = field(default=0.0, metadata=doc(
        "decode attention's fraction of HBM bandwidth reading the KV cache; 0 = memory_efficiency"))
    attention_decode_overhead_us: float = field(default=0.0, metadata=doc(
        "extra fixed cost of one decode attention call, microseconds"))
    all_reduce_fits: dict[str, CollectiveFit] = field(default_factory=dict, metadata=doc(
        "measured all-reduce inside the scale-up domain by group size ('2', '4', '8'): replaces the "
        "algorithm model there"))
    expert_reads: str = field(default="expected", metadata=doc(
        f"weights an MoE device reads per step, one of {EXPERT_READS}: 'expected' = the local experts at "
        "least one of the step's tokens picks under balanced random routing (1 - (1 - k/E)^n of them); "
        "'minimal' = ceil(k / ep), every token picking the same experts (the ideal machine of the floors)"))

    def gemm_constants(self, dtype: str) -> GemmConstants:
        """The GEMM constants of ``dtype`` (the gemm_* fields unless gemm_dtypes lists it)."""
        return self.gemm_dtypes.get(dtype) or GemmConstants(self.gemm_efficiency, self.gemm_k_half,
                                                            self.gemm_overhead_us)

    def moe_gemm_constants(self, dtype: str) -> GemmConstants:
        """The grouped (MoE expert) GEMM constants of ``dtype`` (the dense ones unless moe_gemm_dtypes lists it)."""
        return self.moe_gemm_dtypes.get(dtype) or self.gemm_constants(dtype)

    def __post_init__(self) -> None:
        check_ranges(self, "fraction", "gemm_efficiency", "memory_efficiency", "attention_efficiency",
                     "scale_up_bandwidth_efficiency", "nvls_bandwidth_efficiency", "scale_out_bandwidth_efficiency")
        check_ranges(self, "at_least_one", "gemm_tile_m", "gemm_tile_n", "gemm_split_k_min_depth")
        check_ranges(self, "non_negative", "gemm_k_half", "attention_head_dim_half", "kernel_overhead_us",
                     "collective_latency_us", "attention_decode_memory_efficiency")
        # fitted offsets may be negative; the fixed time of a kernel they adjust may not
        for name, offset in [("gemm_overhead_us", self.gemm_overhead_us),
                             ("attention_decode_overhead_us", self.attention_decode_overhead_us),
                             *((f"gemm_dtypes.{d}.gemm_overhead_us", g.gemm_overhead_us)
                               for d, g in self.gemm_dtypes.items()),
                             *((f"moe_gemm_dtypes.{d}.gemm_overhead_us", g.gemm_overhead_us)
                               for d, g in self.moe_gemm_dtypes.items())]:
            if self.kernel_overhead_us + offset < 0:
                raise SpecError("?", name, offset, f"at least -kernel_overhead_us ({-self.kernel_overhead_us}): "
                                "a kernel's fixed time cannot be negative")
        if self.expert_reads not in EXPERT_READS:
            raise SpecError("?", "expert_reads", self.expert_reads, EXPERT_READS)
        if self.attention_decode_memory_efficiency > 1:
            raise SpecError("?", "attention_decode_memory_efficiency", self.attention_decode_memory_efficiency,
                            "a fraction in (0, 1], or 0 for memory_efficiency")


@dataclass(frozen=True)
class HardwareSpec:
    name: str = field(metadata=doc("system name"))
    device: DeviceSpec = field(metadata=doc("the accelerator"))
    interconnect: InterconnectSpec = field(metadata=doc("scale-up and scale-out networks"))
    system: SystemSpec = field(metadata=doc("device count and price"))

    def __post_init__(self) -> None:
        if self.interconnect.scale_up.domain_size > self.system.num_devices:
            raise SpecError("?", "interconnect.scale_up.domain_size", self.interconnect.scale_up.domain_size,
                            f"at most system.num_devices ({self.system.num_devices})")

    @property
    def num_devices(self) -> int:
        return self.system.num_devices
