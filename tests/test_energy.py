"""Energy and cost columns (mantile/serving/energy.py, engine/table.py): hand-derived values."""

from __future__ import annotations

import math

import numpy as np
import pytest

import mantile
from mantile.serving import energy
from mantile.specs.errors import SpecError
from mantile.specs.hardware import DeviceSpec


def test_device_power_is_linear_from_idle_to_tdp() -> None:
    # H100: idle 117 W, TDP 700 W; half busy -> 117 + 583 / 2 = 408.5 W; over-busy clips at TDP
    got = energy.device_power_w(117.0, 700.0, np.array([0.0, 0.5, 1.0, 1.7]))
    assert got.tolist() == [117.0, 408.5, 700.0, 700.0]
    assert np.isnan(energy.device_power_w(None, 700.0, 0.5))


def test_request_utilization_weights_phases_by_time() -> None:
    # prefill 100 ms at 90% busy, then 9 decode steps of 10 ms at 40%: (0.9*0.1 + 0.4*0.09) / 0.19
    u = energy.request_utilization(0.9, 0.4, 0.1, 0.01, 10)
    assert u == pytest.approx((0.09 + 0.036) / 0.19)


def test_open_loop_busy_probability() -> None:
    # Poisson number in the system with mean 0.5: P(N > 0) = 1 - e^-0.5 = 0.3935
    assert energy.open_loop_busy_probability(0.5) == pytest.approx(0.39347, abs=1e-5)


def test_idle_above_tdp_is_rejected() -> None:
    with pytest.raises(SpecError, match="idle_w"):
        DeviceSpec(name="x", vendor="nvidia", generation="hopper", compute_units=1, peak_tflops={"bf16": 1.0},
                   memory_gib=1.0, hbm_bandwidth_tb_per_s=1.0, source="s", tdp_w=100.0, idle_w=150.0)


def test_estimate_energy_and_cost_columns_agree() -> None:
    r = mantile.estimate(model="llama_3.3_70b", hardware="nvidia_h100_80gb", batch_size=16, input_seq=2048,
                         output_seq=256, tp=8)
    # 8 devices at $3.00 per device-hour (conf/hardware/nvidia_h100_80gb.yaml)
    assert r["usd_per_hour"] == pytest.approx(24.0)
    # power between 8 idle devices (8 x 117 W) and 8 at TDP (8 x 700 W), and the utilization it implies
    assert 8 * 117 < r["power_w"] < 8 * 700
    assert r["power_w"] == pytest.approx(8 * (117 + 583 * r["device_utilization"]))
    assert r["energy_j_per_token"] == pytest.approx(r["power_w"] / r["throughput_tokens_per_s"])


def test_a_lighter_open_loop_draws_less_power() -> None:
    kw = dict(model="llama_3.1_8b", hardware="nvidia_h100_80gb", input_seq=1024, output_seq=128, tp=1)
    light, busy = (mantile.estimate(request_rate=r, **kw) for r in (0.05, 5.0))
    assert light["power_w"] < busy["power_w"]
    assert light["power_w"] >= 117 and not math.isnan(light["energy_j_per_token"])
