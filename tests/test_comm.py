"""Collective times derived by hand on a synthetic two-level network, and topology invariants."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mantile
from mantile.costs import comm
from mantile.specs import load_efficiency, load_hardware

# Scale-up: 100 GB/s per device, 1 us per step, domain of 8; scale-out: 10 GB/s, 5 us.
NET = comm.Network(domain_size=8, up_bytes_per_s=100e9, up_link_bytes_per_s=10e9, up_latency_s=1e-6,
                   nvls_bytes_per_s=60e9, fully_connected=False, in_network_reduction=False,
                   out_bytes_per_s=10e9, out_latency_s=5e-6)


def test_large_all_reduce_uses_the_ring() -> None:
    # ring: 2*(8-1) * (1 us + 1e9 / (8 * 100e9)) = 14 * 1.251 ms = 17.514 ms
    # tree: 2*log2(8)*1 us + 2 * 1e9/100e9 = 20.006 ms; one-shot: 1 us + 7 * 10 ms = 70 ms
    assert comm.all_reduce(NET, 1e9, 8) == pytest.approx(17.514e-3)


def test_small_all_reduce_uses_one_shot() -> None:
    # 1 kB: ring 14 * (1 us + 1.25 ns) = 14.0175 us; tree 6.02 us; one-shot 1 us + 7e3/1e11 s = 1.07 us
    assert comm.all_reduce(NET, 1e3, 8) == pytest.approx(1.07e-6)


def test_in_switch_reduction_wins_for_large_messages() -> None:
    # NVLS: 2 us + 1e9 / 60e9 = 16.6687 ms < ring 17.514 ms
    nvls = dataclasses.replace(NET, in_network_reduction=True)
    assert comm.all_reduce(nvls, 1e9, 8) == pytest.approx(2e-6 + 1e9 / 60e9)


def test_fully_connected_all_reduce() -> None:
    # MI300X-style: each pair has its own 10 GB/s link. Direct: 2 * (1 us + 1e9 / (8 * 10e9)) = 25.002 ms;
    # one-shot: 1 us + 1e9 / 10e9 = 100.001 ms.
    fc = dataclasses.replace(NET, fully_connected=True)
    assert comm.all_reduce(fc, 1e9, 8) == pytest.approx(25.002e-3)


def test_all_reduce_across_domains_is_hierarchical() -> None:
    # 16 devices = 2 domains of 8: reduce-scatter + all-gather inside (each 7 * (1 us + 1e9/8e11)
    # = 8.757 ms) and a ring all-reduce of 1e9/8 bytes between 2 domains: 2 * 1 * (5 us + 1.25e8 /
    # (2 * 10e9)) = 12.51 ms. Total 2 * 8.757 + 12.51 = 30.024 ms.
    assert comm.all_reduce(NET, 1e9, 16) == pytest.approx(2 * 8.757e-3 + 12.51e-3)


def test_all_gather_and_p2p() -> None:
    # ring all-gather of 1e9 bytes over 4: 3 * (1 us + 1e9 / (4 * 100e9)) = 7.503 ms
    assert comm.all_gather(NET, 1e9, 4) == pytest.approx(7.503e-3)
    # p2p: inside 1 us + 1e8/100e9 = 1.001 ms; across 5 us + 1e8/10e9 = 10.005 ms
    assert comm.p2p(NET, 1e8, False) == pytest.approx(1.001e-3)
    assert comm.p2p(NET, 1e8, True) == pytest.approx(10.005e-3)


def test_single_device_collectives_are_free() -> None:
    assert comm.all_reduce(NET, 1e9, 1) == 0 and comm.all_gather(NET, 1e9, 1) == 0
    assert comm.all_to_all(NET, 1e9, 1) == 0


@settings(max_examples=60, deadline=None)
@given(n=st.floats(1e2, 1e10), p=st.sampled_from([2, 4, 8]))
def test_a_collective_inside_nvlink_is_never_slower_than_across_the_network(n: float, p: int) -> None:
    hw = load_hardware("nvidia_h100_80gb")
    net = comm.Network.of(hw, load_efficiency("hopper"))
    split = dataclasses.replace(net, domain_size=1)  # same devices, every hop on InfiniBand
    for fn in (comm.all_reduce, comm.all_gather, comm.all_to_all):
        assert fn(net, n, p) <= fn(split, n, p) + 1e-15


def test_tp_communication_shows_in_the_breakdown() -> None:
    one = mantile.estimate(model="llama_3.3_70b", hardware="nvidia_nvl72_rack", batch_size=8, input_seq=2048,
                           output_seq=128, tp=1)
    eight = mantile.estimate(model="llama_3.3_70b", hardware="nvidia_nvl72_rack", batch_size=8, input_seq=2048,
                             output_seq=128, tp=8)
    assert one["decode_comm_ms"] == 0 and eight["decode_comm_ms"] > 0
    # 2 all-reduces per layer (attention, MLP) + the vocab-parallel embedding/LM head collectives
    assert 0 < eight["decode_comm_ms"] < eight["tpot_ms"]
    assert eight["tpot_ms"] < one["tpot_ms"]


def test_multi_node_tp_pays_the_network() -> None:
    kw = dict(model="llama_3.1_405b", batch_size=16, input_seq=2048, output_seq=128, dtype="fp8")
    inside = mantile.estimate(hardware="nvidia_h100_80gb_x4", tp=8, pp=2, **kw)
    across = mantile.estimate(hardware="nvidia_h100_80gb_x4", tp=16, pp=1, **kw)
    assert across["decode_comm_ms"] > inside["decode_comm_ms"]


def test_no_nan_in_comm_for_all_plans() -> None:
    df = mantile.sweep(model="llama_3.3_70b", hardware="nvidia_h100_80gb_x4", batch_size=[1, 64], input_seq=4096,
                       output_seq=256, tp=[1, 2, 4, 8, 16], pp=[1, 2, 4], cp=[1, 2])
    ok = df.filter(df["valid"])
    assert ok.height > 0 and np.isfinite(ok["tpot_ms"].to_numpy()).all()


def test_every_call_pays_the_fixed_collective_latency() -> None:
    # + 5 us per call: small all-reduce 5 us + 1.07 us (one-shot); p2p inside 5 us + 1.001 ms
    net = dataclasses.replace(NET, call_s=5e-6)
    assert comm.all_reduce(net, 1e3, 8) == pytest.approx(6.07e-6)
    assert comm.p2p(net, 1e8, False) == pytest.approx(1.006e-3)
    assert comm.all_reduce(net, 1e3, 1) == 0


def test_all_gather_across_domains_is_rail_split() -> None:
    # 1e9 bytes over 16 = 2 domains of 8: inside, ring all-gather of the full 1e9 over 8:
    # 7 * (1 us + 1e9 / (8 * 100e9)) = 8.757 ms; between domains each rail moves 1e9/8 bytes over 2:
    # 1 * (5 us + 1.25e8 / (2 * 10e9)) = 6.255 ms. Total 15.012 ms, below the all-reduce (30.024 ms).
    assert comm.all_gather(NET, 1e9, 16) == pytest.approx(15.012e-3)
    assert comm.all_gather(NET, 1e9, 16) <= comm.all_reduce(NET, 1e9, 16)


def test_group_placement_with_a_stride() -> None:
    # a cp group of 2 with tp=8 inside: members 8 devices apart -> one per 8-device domain
    assert NET.split(2, stride=8) == (1, 2)
    # with tp=4 inside both members share a domain
    assert NET.split(2, stride=4) == (2, 1)
    kw = dict(model="llama_3.3_70b", hardware="nvidia_h100_80gb_x4", batch_size=4, input_seq=8192, output_seq=128)
    inside = mantile.estimate(tp=4, cp=2, **kw)
    across = mantile.estimate(tp=8, cp=2, **kw)
    # the cp collectives of tp=8, cp=2 run over InfiniBand: more exposed communication per decode step
    assert across["decode_comm_ms"] > inside["decode_comm_ms"]
