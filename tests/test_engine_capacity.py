"""Batch-capacity study: exact largest batch that fits, the ladder, and what limits each plan."""

from __future__ import annotations

import numpy as np
import polars as pl

from mantile.analysis.capacity import capacity_table, ladder, largest_fitting_batch
from mantile.analysis.sla import Sla
from mantile.engine.runner import run
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
