"""The P:D ratio search (mantile/analysis/disagg_ratio.py, mantile.disagg_ratio): a hand-derived case and
a brute force over every (P, D) of a small space, evaluated by ``engine.disagg.evaluate_disagg``."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import mantile
from mantile.analysis import disagg_ratio
from mantile.engine.disagg import evaluate_disagg, side_args
from mantile.engine.spec import model_spec
from mantile.specs import SpecError

H100 = "nvidia_h100_80gb"
MODEL, S, O = "llama_3.1_8b", 1024, 128  # noqa: E741
PRE, DEC = {"hardware": H100, "tp": 1}, {"hardware": H100, "tp": 2}


def _rates(x_p: float, x_d: float, dev_p: int, dev_d: int) -> disagg_ratio.InstanceRates:
    return disagg_ratio.InstanceRates(x_p, x_d, 64.0, dev_p, dev_d, True)


def test_hand_derived_load_and_budget() -> None:
    # x_p = 2 req/s on 2 devices, x_d = 5 req/s on 4 devices.
    r = _rates(2.0, 5.0, 2, 4)
    # 9 req/s: prefill utilization 9 / (2 P) < 0.999 -> P > 4.505 -> P = 5; decode 9 / D <= 5 -> D = 2
    assert disagg_ratio.for_load(r, 9.0) == (5, 2)
    # exactly 10 req/s: D = 2 still (10 / 2 = 5 = x_d), P = floor(10 / 1.998) + 1 = 6
    assert disagg_ratio.for_load(r, 10.0) == (6, 2)
    # 20 devices: capacity min(2P, 5D) with 2P + 4D <= 20. P=5, D=2 (18 devices) gives min(10, 10) = 10;
    # P=6, D=2 (20) also 10 but more devices; P=7 or 8 leaves room for one decode instance only (5);
    # so (5, 2) is the best, at the matched ratio x_d / x_p = 2.5 = 5 / 2.
    assert disagg_ratio.for_budget(r, 20) == (5, 2)
    chosen = disagg_ratio.choose(r, max_devices=20)
    assert (chosen.num_devices, chosen.capacity_requests_per_s, chosen.matched_ratio) == (18, 10.0, 2.5)
    # 6 devices: one of each (2 + 4), capacity min(2, 5) = 2
    assert disagg_ratio.for_budget(r, 6) == (1, 1)


def _brute_budget(r: disagg_ratio.InstanceRates, n: int) -> tuple[int, int]:
    best, out = None, None
    for p, d in itertools.product(range(1, n + 1), range(1, n + 1)):
        devices = p * r.prefill_devices + d * r.decode_devices
        if devices > n:
            continue
        key = (min(p * r.prefill_requests_per_s, d * r.decode_requests_per_s), -devices, -p)
        if best is None or key > best:
            best, out = key, (p, d)
    assert out is not None
    return out


@pytest.mark.parametrize("x_p,x_d,dev_p,dev_d", [(2.0, 5.0, 2, 4), (3.3, 1.1, 1, 8), (0.7, 9.0, 4, 2),
                                                 (1.0, 1.0, 1, 1)])
def test_budget_search_equals_brute_force(x_p: float, x_d: float, dev_p: int, dev_d: int) -> None:
    r = _rates(x_p, x_d, dev_p, dev_d)
    for n in range(dev_p + dev_d, 41):
        assert disagg_ratio.for_budget(r, n) == _brute_budget(r, n), n


def _grid(request_rate: float, p_max: int = 12, d_max: int = 6) -> dict[str, np.ndarray]:
    """evaluate_disagg over every (P, D) of 1..p_max x 1..d_max at one request rate."""
    _, m = model_spec(MODEL)
    pd = np.array(list(itertools.product(range(1, p_max + 1), range(1, d_max + 1))), dtype=float)
    out = evaluate_disagg(m, side_args("prefill", PRE), side_args("decode", DEC), S, O, pd[:, 0], pd[:, 1],
                          request_rate=request_rate)
    return {"P": pd[:, 0], "D": pd[:, 1], **out}


@pytest.mark.parametrize("request_rate", [60.0, 230.0, 430.0])  # a prefill instance does ~49 req/s
def test_load_search_equals_the_fewest_devices_the_model_sustains(request_rate: float) -> None:
    g = _grid(request_rate)
    ok = np.asarray(g["valid"] & g["fits"])
    assert ok.any() and not ok.all()  # the grid holds both sides of the boundary
    devices = np.where(ok, g["num_devices"], np.inf)
    best = int(np.argmin(devices))
    assert np.sum(devices == devices[best]) == 1  # one split has the fewest devices
    r = mantile.disagg_ratio(MODEL, S, O, PRE, DEC, request_rate=request_rate)
    assert (r["prefill_instances"], r["decode_instances"]) == (int(g["P"][best]), int(g["D"][best]))
    assert r["num_devices"] == devices[best] and r["basis"] == "request_rate"


def test_budget_capacity_is_the_largest_rate_the_model_sustains() -> None:
    r = mantile.disagg_ratio(MODEL, S, O, PRE, DEC, max_devices=12)
    cap, p, d = r["capacity_requests_per_s"], r["prefill_instances"], r["decode_instances"]
    assert r["num_devices"] <= 12 and r["basis"] == "max_devices"
    row = lambda rate: mantile.estimate_disagg(MODEL, S, O, {**PRE, "instances": p}, {**DEC, "instances": d},  # noqa: E731
                                              request_rate=rate)
    assert row(0.99 * cap)["valid"] and not row(1.01 * cap)["valid"]


def test_auto_with_a_load_over_the_budget_takes_the_budgets_split_and_says_so() -> None:
    budget = mantile.disagg_ratio(MODEL, S, O, PRE, DEC, max_devices=6)
    rate = 3 * budget["capacity_requests_per_s"]
    row = mantile.estimate_disagg(MODEL, S, O, PRE, DEC, request_rate=rate, ratio="auto", max_devices=6)
    assert (row["disagg.prefill.instances"], row["disagg.decode.instances"]) == (
        budget["prefill_instances"], budget["decode_instances"])
    assert not row["valid"] and "more than max_devices=6" in row["disagg.ratio_note"]


def test_ratio_errors_name_the_field() -> None:
    with pytest.raises(SpecError, match="ratio"):
        mantile.estimate_disagg(MODEL, S, O, PRE, DEC, concurrency=8, ratio="auto")  # no rate, no budget
    with pytest.raises(SpecError, match="max_devices"):
        mantile.disagg_ratio(MODEL, S, O, PRE, DEC, max_devices=2)  # 1 + 2 devices at least
    with pytest.raises(SpecError, match="prefill.instances"):
        mantile.estimate_disagg(MODEL, S, O, {**PRE, "instances": 2}, DEC, request_rate=1.0, ratio="auto")
    with pytest.raises(SpecError, match="'ratio'"):
        mantile.estimate_disagg(MODEL, S, O, PRE, DEC, request_rate=1.0, ratio="balanced")
