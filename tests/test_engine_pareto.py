"""Pareto fronts against the brute-force definition: a point is on the front when no other point of
its group is at least as good in every objective and strictly better in one."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mantile.analysis.pareto import front2, front3, pareto_front


def brute_force(points: np.ndarray) -> np.ndarray:
    """O(n^2) definition; every column minimized."""
    keep = np.ones(len(points), dtype=bool)
    for i, p in enumerate(points):
        dominated = np.all(points <= p, axis=1) & np.any(points < p, axis=1)
        keep[i] = not dominated.any()
    return keep


def _expected_rows(df: pl.DataFrame, by: list[str], cost: str | None) -> set[int]:
    rows: set[int] = set()
    feasible = df.filter(pl.col("fits"))
    for _, g in feasible.group_by(by) if by else [((), feasible)]:
        cols = [g["lat"].to_numpy(), -g["thr"].to_numpy()] + ([g[cost].to_numpy()] if cost else [])
        rows |= set(g["row"].to_numpy()[brute_force(np.column_stack(cols))].tolist())
    return rows


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("by", [[], ["g"]])
@pytest.mark.parametrize("cost", [None, "cost"])
def test_front_matches_brute_force_on_random_data(seed: int, by: list[str], cost: str | None) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 600))  # > 256 points exercises the 3-D pruning step
    levels = int(rng.choice([4, 16, 1000]))  # few levels: many ties and duplicates
    df = pl.DataFrame({
        "row": np.arange(n), "g": rng.integers(0, 3, n),
        "lat": rng.integers(0, levels, n).astype(float), "thr": rng.integers(0, levels, n).astype(float),
        "cost": rng.integers(0, levels, n).astype(float), "fits": rng.random(n) < 0.9,
    })
    front = pareto_front(df, "lat", "thr", by, cost, collapse_ties=False)
    assert set(front["row"].to_list()) == _expected_rows(df, by, cost)
    # sorted by group, then latency
    assert front.sort([*by, "lat"], maintain_order=True)["row"].to_list() == front["row"].to_list()
    # collapsed: the same points, each once
    objectives = [*by, "lat", "thr", *([cost] if cost else [])]
    collapsed = pareto_front(df, "lat", "thr", by, cost)
    assert collapsed.select(objectives).unique().height == collapsed.height
    assert set(collapsed.select(objectives).rows()) == set(front.select(objectives).rows())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=60))
def test_front2_and_front3_match_brute_force(points: list[tuple[int, int, int]]) -> None:
    pts = np.asarray(points, dtype=float)
    assert (front2(pts[:, 0], pts[:, 1]) == brute_force(pts[:, :2])).all()
    assert (front3(pts[:, 0], pts[:, 1], pts[:, 2]) == brute_force(pts)).all()


def test_front_of_a_hand_made_table() -> None:
    # (latency, throughput): (1, 10) and (2, 20) trade off; (2, 15) has (2, 20)'s latency but less
    # throughput; (3, 20) has (2, 20)'s throughput but more latency; (0.5, 30) does not fit;
    # (4, nan) is not a number.
    df = pl.DataFrame({"tpot_ms": [1.0, 2.0, 2.0, 3.0, 0.5, 4.0],
                       "throughput_tokens_per_s_per_device": [10.0, 20.0, 15.0, 20.0, 30.0, float("nan")],
                       "fits": [True, True, True, True, False, True]})
    front = pareto_front(df, by=[])
    assert front.select("tpot_ms", "throughput_tokens_per_s_per_device").rows() == [(1.0, 10.0), (2.0, 20.0)]


def test_identical_points_collapse_to_the_smallest_plan_and_groups_are_separate() -> None:
    # dp=1 and dp=2 of the same plan: per-device throughput and TPOT are the same, so one point,
    # the one on fewer devices; model b's slow point is alone in its group.
    df = pl.DataFrame({"model_id": ["a", "a", "b"], "hardware_id": ["h", "h", "h"], "dp": [2, 1, 1],
                       "num_devices": [2, 1, 1], "tpot_ms": [1.0, 1.0, 5.0],
                       "throughput_tokens_per_s_per_device": [3.0, 3.0, 1.0], "fits": [True, True, True]})
    by = ["model_id", "hardware_id"]
    front = pareto_front(df, by=by)
    assert front.select("model_id", "dp").rows() == [("a", 1), ("b", 1)]
    assert pareto_front(df, by=by, collapse_ties=False).height == 3
    assert pareto_front(df, by=[]).select("model_id", "dp").rows() == [("a", 1)]  # across groups b is dominated


def test_default_fronts_are_per_workload() -> None:
    # A short prompt dominates a long one on both axes (lower TPOT, more throughput); grouped by
    # workload each prompt length keeps its own front, so the 8k-token point is not lost.
    df = pl.DataFrame({"model_id": ["m"] * 2, "hardware_id": ["h"] * 2, "input_seq": [512, 8192],
                       "output_seq": [256, 256], "tpot_ms": [10.0, 14.0],
                       "throughput_tokens_per_s_per_device": [900.0, 600.0], "fits": [True, True]})
    assert pareto_front(df)["input_seq"].to_list() == [512, 8192]
    assert pareto_front(df, by=["model_id", "hardware_id"])["input_seq"].to_list() == [512]


def test_unknown_column_names_the_choices() -> None:
    with pytest.raises(KeyError, match="latency_ms"):
        pareto_front(pl.DataFrame({"tpot_ms": [1.0]}), latency="latency_ms")


def test_2d_front_is_n_log_n_fast() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.random(2_000_000), rng.random(2_000_000)
    import time

    t0 = time.perf_counter()
    keep = front2(a, b)
    assert time.perf_counter() - t0 < 5.0  # O(n^2) would take hours
    assert 1 <= keep.sum() < 100


def _chunky_table(n: int, seed: int) -> pl.DataFrame:
    """A results-like table: per-workload groups, ties, infeasible rows, and a wide payload column."""
    rng = np.random.default_rng(seed)
    return pl.DataFrame({
        "model_id": ["m"] * n, "hardware_id": ["h"] * n,
        "input_seq": rng.choice([256, 512, 1024], n), "output_seq": rng.choice([64, 128], n),
        "tpot_ms": rng.integers(1, 60, n).astype(float), "throughput_tokens_per_s_per_device":
            rng.integers(1, 60, n).astype(float), "fits": rng.random(n) < 0.8,
        "num_devices": rng.choice([1, 2, 4], n), "tp": rng.choice([1, 2, 4], n), "batch_size": rng.integers(1, 9, n),
        "payload": rng.random(n), "row": np.arange(n)})


def test_front_folder_folds_early_when_its_fronts_hold_many_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep driver's front of chunk fronts: with a small byte budget it folds long before 32 fronts
    (the driver then holds a few, not 32 fronts of up to 20 MB each), and the result is the front of the
    whole table whatever the folding."""
    from mantile.analysis.pareto import DEFAULT_BY
    from mantile.engine import runner

    df = _chunky_table(20_000, 2)
    settings = runner.ParetoSettings(by=DEFAULT_BY)
    whole = settings.front(df)
    monkeypatch.setattr(runner, "FRONT_BYTES_BEFORE_MERGE", 1)  # every add past the first folds
    folder = runner.FrontFolder(settings)
    held = []
    for lo in range(0, df.height, 1_000):
        folder.add(settings.front(df[lo:lo + 1_000]).to_arrow())
        held.append(len(folder.fronts))
    assert max(held) <= 2
    assert folder.front().sort("row").equals(whole.sort("row"))
