"""Collectives on a two-level topology: a scale-up domain (NVLink/NVSwitch, xGMI) and a scale-out
network (InfiniBand/Ethernet) between domains.

Each collective takes the message size (bytes per device) and the group size p (arrays allowed) and
returns seconds. A group of p devices is packed into domains: p_in = min(p, domain_size) devices per
domain, p_out = p / p_in domains. Inside a domain the fastest applicable algorithm is chosen per
message, as NCCL's tuner does:

- ring: 2(p-1) steps of latency alpha, 2(p-1)/p * n / beta on the wire (Patarasuk & Yuan 2009);
- tree: 2 log2(p) latencies, 2 n / beta (NCCL double binary tree);
- in-switch reduction (NVLink SHARP, NVSwitch gen3+): 2 alpha + n / beta_nvls: each device sends its
  buffer once and receives the reduced result once (NCCL "NVLS" algorithm; its achieved algorithm
  bandwidth, ~275 GB/s on 8x H100, is its own constant);
- one-shot (latency-optimized small-message all-reduce of TensorRT-LLM / vLLM custom all-reduce):
  alpha + (p-1) n / beta: every device reads every peer's buffer;
- fully connected (MI300X Infinity Fabric: one dedicated link per pair): a device talks to all p-1
  peers at once, each over its own link of bandwidth beta_link: reduce-scatter = alpha + n/(p beta_link).

Across domains the collective is hierarchical: reduce-scatter inside the domain, the cross-domain
part over scale-out on n / p_in bytes (ring), all-gather inside the domain. Every call also pays a
fixed ``collective_latency_us`` (kernel launch and the cross-GPU synchronization of NCCL/RCCL), a
constant of the generation's profile.
beta = datasheet bandwidth * achieved bandwidth efficiency of the generation's profile.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mantile.specs.hardware import EfficiencyProfile, HardwareSpec, LinkSpec

Array = np.ndarray | float


@dataclass(frozen=True)
class Network:
    """Achieved bandwidths (bytes/s) and latencies (s) of the two levels."""

    domain_size: int
    up_bytes_per_s: float
    up_link_bytes_per_s: float
    up_latency_s: float
    nvls_bytes_per_s: float
    fully_connected: bool
    in_network_reduction: bool
    out_bytes_per_s: float
    out_latency_s: float
    call_s: float = 0.0  # fixed cost of one collective call (launch, synchronization)
    #: measured all-reduce inside the domain: group size -> (seconds per call, bus bytes/s)
    all_reduce_fits: tuple[tuple[int, float, float], ...] = ()

    @classmethod
    def of(cls, hw: HardwareSpec, eff: EfficiencyProfile) -> Network:
        up: LinkSpec = hw.interconnect.scale_up
        out: LinkSpec = hw.interconnect.scale_out
        return cls(
            domain_size=up.domain_size,
            up_bytes_per_s=up.bandwidth_bytes_per_s * eff.scale_up_bandwidth_efficiency,
            up_link_bytes_per_s=up.link_bytes_per_s * eff.scale_up_bandwidth_efficiency,
            up_latency_s=up.latency_s,
            nvls_bytes_per_s=up.bandwidth_bytes_per_s * eff.nvls_bandwidth_efficiency,
            fully_connected=up.topology == "fully_connected",
            in_network_reduction=up.in_network_reduction,
            out_bytes_per_s=out.bandwidth_bytes_per_s * eff.scale_out_bandwidth_efficiency,
            out_latency_s=out.latency_s,
            call_s=eff.collective_latency_us * 1e-6,
            all_reduce_fits=tuple(sorted((int(g), f.latency_us * 1e-6, f.bus_bandwidth_gb_s * 1e9)
                                         for g, f in eff.all_reduce_fits.items())),
        )

    def split(self, p: Array, stride: Array = 1) -> tuple[Array, Array]:
        """(devices per domain, domains) of a group of p devices whose members are ``stride`` devices
        apart (a context-parallel group with tp inside it has stride tp)."""
        p_in = np.clip(np.floor(self.domain_size / stride), 1, p)
        return p_in, p / p_in


def _ring(n: Array, p: Array, alpha: float, beta: float, phases: int) -> Array:
    """``phases`` = 2 for all-reduce, 1 for reduce-scatter / all-gather."""
    return phases * (p - 1) * (alpha + n / (p * beta))


def _intra_all_reduce(net: Network, n: Array, p: Array) -> Array:
    a = net.up_latency_s
    if net.fully_connected:
        direct = 2.0 * (a + n / (p * net.up_link_bytes_per_s))
        one_shot = a + n / net.up_link_bytes_per_s
        return np.minimum(direct, one_shot)
    best = np.minimum(_ring(n, p, a, net.up_bytes_per_s, 2),
                      2.0 * np.log2(np.maximum(p, 2)) * a + 2.0 * n / net.up_bytes_per_s)
    best = np.minimum(best, a + (p - 1) * n / net.up_bytes_per_s)
    if net.in_network_reduction:
        best = np.minimum(best, 2.0 * a + n / net.nvls_bytes_per_s)
    return best


def _intra_gather(net: Network, n: Array, p: Array) -> Array:
    """All-gather or reduce-scatter of a buffer of n bytes (full size) inside one domain."""
    a = net.up_latency_s
    if net.fully_connected:
        return a + n / (p * net.up_link_bytes_per_s)
    return _ring(n, p, a, net.up_bytes_per_s, 1)


def _fitted_all_reduce(net: Network, n: Array, p: Array, modelled: Array) -> Array:
    """Where the engine's all-reduce was measured for this group size (``EfficiencyProfile.all_reduce_fits``):
    t = latency + 2 (p-1)/p * n / bus bandwidth (nccl-tests' busbw definition), including the call's
    fixed cost; elsewhere the algorithm model (+ the generic call cost)."""
    out = modelled + net.call_s
    for group, latency_s, bus_bytes_per_s in net.all_reduce_fits:
        measured = latency_s + 2.0 * (group - 1) / group * n / bus_bytes_per_s
        out = np.where(p == group, measured, out)
    return out


def all_reduce(net: Network, n: Array, p: Array) -> Array:
    """Seconds to all-reduce n bytes over p devices (0 when p == 1)."""
    p_in, p_out = net.split(p)
    intra = _intra_all_reduce(net, n, p_in)
    if net.all_reduce_fits:
        intra = _fitted_all_reduce(net, n, p_in, intra) - net.call_s
    cross = 2.0 * _intra_gather(net, n, p_in) + _ring(n / p_in, p_out, net.out_latency_s, net.out_bytes_per_s, 2)
    t = np.where(p_out > 1, cross, intra)
    return np.where(p > 1, net.call_s + t, 0.0)


def all_gather(net: Network, n: Array, p: Array, stride: Array = 1) -> Array:
    """Seconds to all-gather (or reduce-scatter) a buffer of n bytes in total over p devices.
    Across domains: a ring between domains on the n / p_in bytes each rail holds, then inside."""
    p_in, p_out = net.split(p, stride)
    t = _intra_gather(net, n, p_in) + _ring(n / p_in, p_out, net.out_latency_s, net.out_bytes_per_s, 1)
    return np.where(p > 1, net.call_s + t, 0.0)


reduce_scatter = all_gather


def all_to_all(net: Network, n: Array, p: Array) -> Array:
    """Seconds for each device to send n bytes spread evenly over the p devices of the group."""
    p_in, p_out = net.split(p)
    a = net.up_latency_s
    if net.fully_connected:
        intra = a + n / (p * net.up_link_bytes_per_s)
    else:
        intra = a + n * (p_in - 1) / p / net.up_bytes_per_s
    cross = net.out_latency_s + n * (p - p_in) / p / net.out_bytes_per_s
    t = np.where(p_out > 1, np.maximum(intra, cross), intra)
    return np.where(p > 1, net.call_s + t, 0.0)


def p2p(net: Network, n: Array, cross_domain: Array) -> Array:
    """Seconds to send n bytes from one device to another (pipeline stages)."""
    inside = net.up_latency_s + n / net.up_bytes_per_s
    outside = net.out_latency_s + n / net.out_bytes_per_s
    return net.call_s + np.where(cross_domain, outside, inside)
