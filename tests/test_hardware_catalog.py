"""Every hardware file loads and estimates; new systems checked by hand against their datasheets.

Expected values are the datasheet figures with the arithmetic written out, not values read back from
the YAML, so a typo in a file fails here.
"""

from __future__ import annotations

import math

import pytest

import mantile
from mantile.specs.catalog import ids, load_hardware
from mantile.specs.errors import SpecError
from mantile.specs.hardware import DeviceSpec, generations

HARDWARE = ids("hardware")
MiB = 2**20
GiB = 2**30


@pytest.mark.parametrize("hardware_id", HARDWARE)
def test_every_hardware_file_loads_with_a_known_generation(hardware_id: str) -> None:
    hw = load_hardware(hardware_id)
    assert hw.device.generation in ids("efficiency")
    assert hw.device.source and hw.interconnect.scale_up.source and hw.interconnect.scale_out.source


@pytest.mark.parametrize("hardware_id", HARDWARE)
def test_every_hardware_id_estimates_finite_positive_latency(hardware_id: str) -> None:
    peaks = load_hardware(hardware_id).device.peak_tflops
    dtype = "bf16" if "bf16" in peaks else "fp16"
    r = mantile.estimate(model="llama_3.1_8b", hardware=hardware_id, batch_size=1, input_seq=128,
                         output_seq=16, dtype=dtype)
    for key in ("ttft_ms", "tpot_ms"):
        assert math.isfinite(r[key]) and r[key] > 0, (hardware_id, key, r[key])


def test_generations_are_the_efficiency_files_and_errors_name_them() -> None:
    assert set(generations()) >= {"hopper", "blackwell_ultra", "cdna4", "tpu_v6e", "gaudi3", "ada"}
    with pytest.raises(SpecError) as err:
        DeviceSpec(name="x", vendor="x", generation="pascal", compute_units=1, peak_tflops={"fp16": 1.0},
                   memory_gib=1.0, hbm_bandwidth_tb_per_s=1.0, source="x")
    assert "'pascal'" in str(err.value) and "'hopper'" in str(err.value)


def test_b300() -> None:
    d = load_hardware("nvidia_b300").device
    assert d.peak_tflops["bf16"] == 36_000 / 8 / 2   # HGX B300: 36 PF bf16 sparse per 8 GPUs, dense = /2
    assert d.peak_tflops["fp8"] == 72_000 / 8 / 2    # 72 PF fp8 sparse per 8 GPUs
    assert d.memory_gib == pytest.approx(275040 * MiB / GiB, abs=0.05)  # nvidia-smi 275040 MiB


def test_gb300_nvl72() -> None:
    hw = load_hardware("nvidia_gb300_nvl72")
    assert hw.device.peak_tflops["fp4"] == 1_080_000 / 72  # rack 1080 PF dense FP4 / 72 GPUs
    assert hw.device.hbm_bandwidth_tb_per_s == 576 / 72   # rack 576 TB/s / 72
    assert hw.interconnect.scale_up.domain_size == 72 == hw.num_devices


def test_h20() -> None:
    d = load_hardware("nvidia_h20").device
    assert d.peak_tflops["bf16"] == 148.0 and d.peak_tflops["fp8"] == 2 * 148.0  # 148 TF fp16, 296 fp8
    assert d.memory_gib == pytest.approx(97871 * MiB / GiB, abs=0.05)           # nvidia-smi 97871 MiB
    assert d.hbm_bandwidth_tb_per_s == 4.0


def test_l40s_pcie_no_nvlink() -> None:
    hw = load_hardware("nvidia_l40s")
    assert hw.device.peak_tflops["fp8"] == 1466 / 2                    # datasheet 1,466* (sparse)
    assert hw.device.peak_tflops["bf16"] == 362.05  # datasheet dense column (its 733* sparse is not 2x)
    assert hw.interconnect.scale_up.bandwidth_gb_per_s_per_device == 64 / 2  # Gen4 x16 64 GB/s bidir
    assert not hw.interconnect.scale_up.in_network_reduction


def test_rtx_pro_6000() -> None:
    hw = load_hardware("nvidia_rtx_pro_6000")
    assert hw.device.peak_tflops["fp4"] == 4000 / 2        # 4000 AI TOPS FP4 sparse
    assert hw.device.hbm_bandwidth_tb_per_s == 1597 / 1000  # datasheet 1597 GB/s
    assert hw.interconnect.scale_up.bandwidth_gb_per_s_per_device == 128 / 2  # Gen5 x16 128 GB/s bidir


def test_mi325x() -> None:
    d = load_hardware("amd_mi325x").device
    assert d.peak_tflops["bf16"] == pytest.approx(2100e6 * 256 * 2 * 1216 / 1e12, abs=0.1)  # 1307.4
    assert (d.memory_gib, d.hbm_bandwidth_tb_per_s, d.tdp_w) == (256, 6.0, 1000)


def test_mi355x_fp6_and_fp4() -> None:
    d = load_hardware("amd_mi355x").device
    bf16 = 2400e6 * 512 * 2 * 1024 / 1e12                 # 2516.6: clock x FMA/clk x 2 x matrix cores
    assert d.peak_tflops["bf16"] == pytest.approx(bf16, abs=0.1)
    assert d.peak_tflops["fp6"] == d.peak_tflops["fp4"] == pytest.approx(4 * bf16, abs=0.5)  # 10.1 PF
    assert mantile.estimate(model="llama_3.1_8b", hardware="amd_mi355x", batch_size=1, input_seq=128,
                            output_seq=16, dtype="fp6")["tpot_ms"] > 0


def test_tpu_v6e() -> None:
    small, pod = load_hardware("google_tpu_v6e_8"), load_hardware("google_tpu_v6e_256")
    assert small.device.peak_tflops["bf16"] == 918.0
    assert small.interconnect.scale_up.bandwidth_gb_per_s_per_device == 800 / 2  # 800 GBps bidir ICI
    assert pod.device.peak_tflops["bf16"] * 256 == pytest.approx(234_900, rel=1e-3)  # 234.9 PF per pod
    assert pod.interconnect.scale_up.domain_size == pod.num_devices == 256


def test_gaudi3() -> None:
    hw = load_hardware("intel_gaudi3")
    up = hw.interconnect.scale_up
    assert up.bandwidth_gb_per_s_per_device == 21 * 200 / 8  # 21 ports x 200 Gb/s = 525 GB/s
    assert up.link_bandwidth_gb_per_s == 3 * 200 / 8         # 3 ports per peer = 75 GB/s
    assert hw.interconnect.scale_out.bandwidth_gb_per_s_per_device == 3 * 200 / 8
    assert hw.device.peak_tflops["bf16"] == 1835.0
