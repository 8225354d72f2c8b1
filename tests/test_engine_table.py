"""The results table built by the engine: prices, device counts, reasons, block-wise evaluation."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
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
