"""Batch-capacity study: exact largest batch that fits, the ladder, and what limits each plan."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from mantile.analysis.capacity import _bisect, capacity_table, ladder, largest_fitting_batch, run_capacity
from mantile.analysis.sla import Sla
from mantile.engine.runner import EngineSettings, ParetoSettings, run
from mantile.engine.spec import make_spec


def test_ladder_is_powers_of_two_plus_each_plans_maximum() -> None:
    assert ladder([209], 16384) == [1, 2, 4, 8, 16, 32, 64, 128, 209]
    assert ladder([21, 233, 0], 100) == [1, 2, 4, 8, 16, 21, 32, 64, 100]
    assert ladder([], 64) == [1]


def test_bisection_finds_the_same_batch_as_evaluating_every_batch() -> None:
    axes = {"tp": [1, 2, 4, 8], "input_seq": [512, 8192], "output_seq": 256}
    spec = make_spec("llama_3.3_70b", "nvidia_h100_80gb", {**axes, "batch_size": 1})
    probe = run(spec).results
    found = largest_fitting_batch(spec, probe, ceiling=4096)
    # brute force: every batch 1..2500 for every plan
    every = run(make_spec("llama_3.3_70b", "nvidia_h100_80gb",
                          {**axes, "batch_size": list(range(1, 2501))})).results
    truth = every.group_by("tp", "input_seq", maintain_order=True).agg(
        pl.col("batch_size").filter(pl.col("fits")).max().fill_null(0))
    expected = probe.join(truth, on=["tp", "input_seq"], how="left")["batch_size_right"].to_numpy()
    assert (found == expected).all(), (found, expected)
    assert found[0] == 0 and found[-1] > 100  # tp=1: 70B weights alone overflow an 80 GB device


def test_capacity_limited_by_memory_or_by_the_sla() -> None:
    axes = {"tp": [2, 8], "input_seq": 2048, "output_seq": 256, "batch_size": [1, 2, 4, 8, 16, 21, 32, 64]}
    lf = run(make_spec("llama_3.3_70b", "nvidia_h100_80gb", axes, "pytorch")).results.lazy()  # static batch
    free = capacity_table(lf)
    assert free["limited_by"].to_list() == ["memory", "memory"]
    assert free["batch_limit"].to_list() == free["max_batch_size"].to_list()
    tight = capacity_table(lf, Sla(ttft_ms=2000))
    # ttft grows with the batch (the whole batch is prefilled): the SLA binds before memory
    for row in tight.iter_rows(named=True):
        assert row["limited_by"] == "sla: ttft_ms" and row["ttft_ms"] <= 2000
        assert row["batch_limit"] == row["sla_max_batch_size"] < row["max_batch_size"]
    assert np.all(tight["kv_cache_budget_gb_per_device"].to_numpy() > 0)


def test_bisect_finds_the_last_true_batch() -> None:
    # ok(b) = b <= limit; limits 0 (batch 1 already fails), 5, and 100 beyond the top of 50
    limit = np.array([0, 5, 100])
    found = _bisect(lambda b: b <= limit, np.array([10, 10, 50]))
    assert found.tolist() == [0, 5, 50]


@pytest.mark.parametrize("sla", [Sla(tpot_ms=50), Sla(ttft_ms=20_000, tokens_per_s_per_user=30)])
def test_capacity_limit_is_exact_not_a_ladder_rung(tmp_path, sla: Sla) -> None:
    # Brute force: every batch 1..700 of every plan; the limit is the largest batch that fits and
    # meets the SLA (all batches below it meet it too: the cost model is monotone in the batch).
    axes = {"tp": [4, 8], "input_seq": 2048, "output_seq": 256}
    every = run(make_spec("llama_3.3_70b", "nvidia_h100_80gb", {**axes, "batch_size": list(range(1, 701))},
                          "pytorch")).results  # a static batch: the cost model is monotone in it
    truth = every.group_by("tp", maintain_order=True).agg(
        pl.col("batch_size").filter(sla.meets()).max().alias("limit"),
        pl.col("batch_size").filter(~sla.meets()).min().alias("first_miss")).sort("tp")
    assert (truth["first_miss"] == truth["limit"] + 1).all()  # monotone: no hole below the limit
    spec = make_spec("llama_3.3_70b", "nvidia_h100_80gb", {**axes, "batch_size": 1}, "pytorch")
    _, table = run_capacity(spec, EngineSettings(progress=False), tmp_path, "", ParetoSettings(), sla, 16384)
    assert table.sort("tp")["batch_limit"].to_list() == truth["limit"].to_list()
    assert any(b & (b - 1) for b in truth["limit"].to_list())  # at least one limit is not a power of two
    for row in table.iter_rows(named=True):
        assert row["limited_by"].startswith("sla: ") or row["batch_limit"] == row["max_batch_size"]
