"""The results table built by the engine: prices, device counts, reasons, block-wise evaluation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mantile.engine import table
from mantile.engine.spec import make_spec
from mantile.engine.table import evaluate_chunk


def _one(**axes) -> dict:
    spec = make_spec(axes.pop("model", "llama_3.1_8b"), axes.pop("hardware", "nvidia_h100_80gb"),
                     {"batch_size": 8, "input_seq": 1024, "output_seq": 128, **axes})
    (model_id, model), sys_ = next(iter(spec.models.items())), next(iter(spec.systems.values()))
    return evaluate_chunk(model_id, model, sys_, spec, 0, spec.n_points).row(0, named=True)


def test_cost_columns_by_hand() -> None:
    # nvidia_h100_80gb costs $3.00 per device-hour; tp=2 -> 2 devices -> $6.00 per hour.
    row = _one(tp=2)
    thr = row["throughput_tokens_per_s"]
    assert row["num_devices"] == 2
    # $ per million tokens = 6.00 $/h / 3600 s/h / thr tokens/s * 1e6
    assert math.isclose(row["cost_usd_per_million_tokens"], 6.0 / 3600 / thr * 1e6, rel_tol=1e-12)
    assert math.isclose(row["throughput_tokens_per_s_per_usd_hour"], thr / 6.0, rel_tol=1e-12)


def test_cost_is_nan_without_a_price() -> None:
    row = _one(hardware="nvidia_nvl72_rack")  # the rack config has no price per device-hour
    assert math.isnan(row["cost_usd_per_million_tokens"]) and row["throughput_tokens_per_s"] > 0


def test_invalid_plans_keep_their_device_count_and_a_specific_reason() -> None:
    row = _one(tp=3, pp=2)
    assert not row["valid"] and row["num_devices"] == 6
    assert row["reason"].startswith("tp=3 does not divide num_attention_heads (32)")


def test_points_that_do_not_fit_say_how_much_memory_they_need() -> None:
    row = _one(model="llama_3.3_70b", tp=1)
    assert row["valid"] and not row["fits"]
    assert row["reason"] == (f"does not fit: needs {round(row['memory_gb_per_device'], 1)} GB per device, "
                             f"{round(row['usable_memory_gb_per_device'], 1)} GB usable")


def test_blocked_evaluation_equals_one_block(monkeypatch) -> None:
    spec = make_spec("llama_3.1_8b", "nvidia_h100_80gb", {
        "tp": [1, 2, 3, 4], "pp": [1, 2], "batch_size": list(range(1, 300, 7)), "input_seq": [512, 4096],
        "output_seq": [64, 512], "dtype": ["bf16", "fp8", "fp4"], "kv_dtype": ["fp8", "bf16"]})
    (model_id, model), sys_ = next(iter(spec.models.items())), next(iter(spec.systems.values()))
    whole = evaluate_chunk(model_id, model, sys_, spec, 5, spec.n_points)
    monkeypatch.setattr(table, "BLOCK_POINTS", 97)
    blocked = evaluate_chunk(model_id, model, sys_, spec, 5, spec.n_points)
    assert blocked.height > 10 * 97
    assert_frame_equal(whole, blocked)


def test_identity_columns_follow_the_grid_order() -> None:
    spec = make_spec("llama_3.1_8b", "nvidia_h100_80gb",
                     {"tp": [1, 2], "batch_size": [1, 4, 16], "input_seq": 512, "output_seq": 64})
    (model_id, model), sys_ = next(iter(spec.models.items())), next(iter(spec.systems.values()))
    df = evaluate_chunk(model_id, model, sys_, spec, 0, 6)
    assert df.select("tp", "batch_size").rows() == [(1, 1), (1, 4), (1, 16), (2, 1), (2, 4), (2, 16)]
    assert df["dtype"].dtype == pl.Enum(list(table.STR_AXES["dtype"]))
    assert (df["kv_dtype"].cast(pl.String) == "bf16").all()


def test_grid_positions_match_unravel_index() -> None:
    from mantile.engine.grid import GridIndex

    axes = {"a": [1, 2, 3], "b": [7], "c": list(range(5)), "d": [10, 20]}
    for start, stop in [(0, 30), (7, 8), (3, 29), (11, 23)]:
        index = GridIndex.of(axes, start, stop)
        expected = np.unravel_index(np.arange(start, stop), (3, 1, 5, 2))
        for (key, pos), exp in zip(index.positions.items(), expected, strict=True):
            assert (np.zeros_like(exp) if pos is None else pos).tolist() == exp.tolist(), key


#: Grids over which sub-grid (box) evaluation must equal flat evaluation: MLA, MoE and windowed
#: models, every load key, static / continuous / scheduler modes, speculative decoding, prefix
#: caching, expert-parallel keys, finite benchmark runs, dtype columns (``engine.table._pieces``).
BOX_CASES = [
    ("llama_3.1_8b", "nvidia_h100_80gb", "pytorch", {}, {
        "tp": [1, 2, 3, 4], "pp": [1, 2], "dp": [1, 2], "batch_size": [1, 5, 64, 300], "input_seq": [512, 4096],
        "output_seq": [64, 512], "dtype": ["bf16", "fp8", "fp4"], "kv_dtype": ["fp8", "bf16"]}),
    ("llama_3.1_8b", "nvidia_h100_80gb", "pytorch", {"batching": "static"}, {
        "tp": [1, 2], "pp": [1, 2, 4], "batch_size": [1, 3, 16, 200], "input_seq": [256, 2048, 9000],
        "output_seq": [1, 64, 700], "prefix_cache_hit_rate": [0.0, 0.5]}),
    ("deepseek_v3", "nvidia_h200_141gb_x2", "sglang", {}, {
        "tp": [8, 16], "ep": [1, 8, 16], "dp_attention": [False, True], "concurrency": [1, 32, 512],
        "input_seq": [1024, 8192], "output_seq": [128, 1024], "dtype": ["fp8", "auto"],
        "spec_method": ["none", "mtp"], "spec_num_tokens": [1, 3], "num_requests": [0, 64]}),
    ("gpt_oss_120b", "nvidia_b200_180gb", "trtllm", {}, {
        "tp": [1, 2, 4], "ep": [1, 4], "request_rate": [0.5, 4.0, 50.0], "input_seq": [1024, 16384],
        "output_seq": [256, 2048], "dtype": ["auto", "fp8"], "redundant_experts": [0, 8],
        "expert_imbalance": [1.0, 1.3], "num_requests": [0, 200]}),
    ("gemma_3_27b", "nvidia_h100_80gb", "vllm", {"draft_model": "llama_3.2_1b"}, {
        "tp": [1, 2, 4], "batch_size": [1, 8, 128], "input_seq": [512, 32768], "output_seq": [100, 1000],
        "spec_method": ["none", "draft", "eagle", "ngram"], "spec_num_tokens": [2, 4],
        "spec_acceptance": [0.0, 0.7], "prefix_cache_hit_rate": [0.0, 0.9]}),
    ("mixtral_8x7b", "nvidia_a100_80gb", "vllm", {"batching": "continuous"}, {
        "tp": [1, 2, 4, 8], "ep": [1, 2], "pp": [1, 2], "batch_size": [1, 33, 256], "input_seq": [128, 4096],
        "output_seq": [32, 512], "kv_dtype": ["bf16", "fp8"]}),
]


@pytest.mark.parametrize("model,hardware,serving,overrides,axes", BOX_CASES, ids=[c[0] + "-" + c[2] for c in BOX_CASES])
def test_sub_grid_evaluation_equals_flat_evaluation(monkeypatch, model, hardware, serving, overrides, axes) -> None:
    spec = make_spec(model, hardware, axes, serving, **overrides)
    (model_id, model_), sys_ = next(iter(spec.models.items())), next(iter(spec.systems.values()))
    n = spec.n_points
    for start, stop in [(0, n), (7, n - 5), (n // 3, min(n // 3 + 999, n))]:
        monkeypatch.setattr(table, "BOX_MIN_POINTS", 10**12)  # the reference: flat blocks only
        flat = evaluate_chunk(model_id, model_, sys_, spec, start, stop)
        monkeypatch.setattr(table, "BOX_MIN_POINTS", 1)  # every sub-grid broadcast, cut small
        monkeypatch.setattr(table, "BOX_MAX_POINTS", 96)
        boxed = evaluate_chunk(model_id, model_, sys_, spec, start, stop)
        monkeypatch.undo()
        assert flat["valid"].sum() > 0
        assert_frame_equal(flat, boxed, check_exact=False, rel_tol=1e-9, abs_tol=0.0)


def test_grid_boxes_cover_a_range_in_order() -> None:
    from mantile.engine.grid import boxes

    axes = {"a": [1, 2, 3], "b": [7], "c": list(range(5)), "d": [10, 20]}
    for start, stop in [(0, 30), (7, 8), (3, 29), (11, 23), (10, 20)]:
        expected = np.stack(np.unravel_index(np.arange(start, stop), (3, 1, 5, 2)), axis=1).tolist()
        got, lo = [], 0
        for box in boxes(axes, start, stop, max_points=4):
            assert box.lo == lo and 0 < box.n_points <= 4
            ranges = [range(a, b) for a, b in box.ranges.values()]
            got += [list(p) for p in itertools.product(*ranges)]
            lo = box.hi
        assert got == expected


ALONE_CASES = [
    # Batch 1 decodes with no prompt riding along most steps, batch 64 with prompts riding: evaluated in
    # one block, the batch-1 points used to pay the riding chunk's attention launches (TPOT 17.457 ms
    # instead of 17.386 ms at tp=1).
    ("mixtral_8x7b", "nvidia_a100_80gb", {"tp": [1, 2], "batch_size": [1, 64], "input_seq": 4096, "output_seq": 512,
                                          "kv_dtype": "fp8"}, {"batching": "continuous"}),
    # A steady closed loop (num_requests 0) beside finite runs: its decode breakdown and TPOT floor used
    # to be the finite branch's one-sequence step.
    ("llama_3.1_8b", "nvidia_h100_80gb", {"concurrency": [4, 64], "num_requests": [0, 200], "input_seq": 2048,
                                          "output_seq": 256}, {}),
]


@pytest.mark.parametrize("model,hardware,axes,overrides", ALONE_CASES, ids=[c[0] for c in ALONE_CASES])
def test_a_point_costs_the_same_whatever_points_share_its_evaluation(model, hardware, axes, overrides) -> None:
    # every row equals the point evaluated alone (estimate's path)
    spec = make_spec(model, hardware, axes, "vllm", **overrides)
    (model_id, model_), sys_ = next(iter(spec.models.items())), next(iter(spec.systems.values()))
    df = evaluate_chunk(model_id, model_, sys_, spec, 0, spec.n_points)
    for row in df.iter_rows(named=True):
        point = {k: row[k] for k in (*spec.axes, "dtype", "kv_dtype") if row.get(k) is not None}
        alone = table.results_row(model_id, model_, sys_, spec, point)
        for key, value in row.items():
            if isinstance(value, float) and key not in table.IDENTITY:
                assert value == pytest.approx(alone[key], rel=1e-12, nan_ok=True), (point, key)


@pytest.mark.parametrize("big", [False, True])
def test_distinct_rows_by_hand(big: bool) -> None:
    # rows (1, 2), (3, 4), (1, 2), (3, 5): three distinct, first seen at rows 0, 1, 3; a value of 2**40 makes
    # the mixed-radix key overflow 62 bits, so the row-wise unique answers instead (the same answer)
    top = 2**40 if big else 5
    first, inverse = table._distinct_rows([np.array([1, 3, 1, 3]), np.array([2, 4, 2, top])])
    assert sorted(first.tolist()) == [0, 1, 3]
    assert inverse[0] == inverse[2] and len({int(inverse[0]), int(inverse[1]), int(inverse[3])}) == 3
