"""SLA search: which points meet the constraints, ranking, and how far the closest miss is."""

from __future__ import annotations

import polars as pl
import pytest

from mantile.analysis import sla as sla_mod
from mantile.analysis.sla import Sla
from mantile.analysis.summary import sla_text
from mantile.specs import SpecError

ROWS = pl.DataFrame({
    "model_id": ["m"] * 5, "hardware_id": ["h"] * 5, "tp": [1, 2, 4, 8, 8], "pp": 1, "dp": 1, "ep": 1,
    "cp": 1, "sp": 1, "batch_size": [1, 1, 1, 1, 64], "input_seq": 2048, "output_seq": 256, "dtype": "bf16",
    "ttft_ms": [900.0, 400.0, 200.0, 100.0, 5000.0],
    "tpot_ms": [30.0, 60.0, 40.0, 20.0, 45.0],
    "tokens_per_s_per_user": [1000 / 30, 1000 / 60, 1000 / 40, 1000 / 20, 1000 / 45],
    "throughput_tokens_per_s_per_device": [30.0, 15.0, 20.0, 10.0, 200.0],
    "throughput_tokens_per_s_per_usd_hour": [10.0, 2.5, 1.7, 0.4, 8.3],
    "cost_usd_per_million_tokens": [1.0, 2.0, 3.0, 4.0, 0.5],
    "fits": [True, True, True, True, True],
})


def test_meets_and_ranks_by_throughput_per_device() -> None:
    s = Sla(ttft_ms=500, tpot_ms=50)
    best = sla_mod.meeting(ROWS.lazy(), s)
    assert best["tp"].to_list() == [4, 8]  # tp=1 is too slow to start, tp=2 too slow per token
    assert sla_mod.count_meeting(ROWS.lazy(), s) == (2, 5)


def test_closest_miss_and_its_text() -> None:
    s = Sla(ttft_ms=500, tpot_ms=50)
    # misses: tp=1: ttft 900/500 - 1 = 80 %; tp=2: tpot 60/50 - 1 = 20 %; tp=8 b64: ttft 900 %
    row = sla_mod.best_failing(ROWS.lazy(), s).row(0, named=True)
    assert row["tp"] == 2 and row["worst_miss"] == pytest.approx(0.2)
    assert sla_mod.miss_text(row, s) == "tpot_ms 60 > 50 (20.0% over)"


def test_tokens_per_user_is_a_lower_bound() -> None:
    s = Sla(tokens_per_s_per_user=40)  # 40 tokens/s per user <=> tpot <= 25 ms
    assert sla_mod.meeting(ROWS.lazy(), s)["tp"].to_list() == [8]
    row = sla_mod.best_failing(ROWS.lazy(), s).row(0, named=True)
    assert row["tp"] == 1  # 33.3 tokens/s: needs 40/33.3 - 1 = 20 % more
    assert "tokens_per_s_per_user 33.33 < 40 (16.7% short)" == sla_mod.miss_text(row, s)
    assert s.latency_bound_ms("tpot_ms") == 25.0 and s.latency_bound_ms("ttft_ms") is None


def test_points_that_do_not_fit_never_meet() -> None:
    rows = ROWS.with_columns(fits=pl.Series([True, True, False, False, True]))
    assert sla_mod.meeting(rows.lazy(), Sla(ttft_ms=500, tpot_ms=50)).height == 0


def test_summary_text_names_counts_rankings_and_the_miss() -> None:
    text = sla_text(ROWS.lazy(), Sla(ttft_ms=500, tpot_ms=50))
    assert "2 of 5 fitting points meet it" in text
    assert "by throughput per device" in text and "by throughput per dollar" in text
    assert "Closest miss: m on h, tp=2 batch=1: tpot_ms 60 > 50 (20.0% over)" in text
    assert sla_text(ROWS.lazy(), Sla()) == ""


@pytest.mark.parametrize("raw,needle", [({"ttft_ms": -1}, "ttft_ms"), ({"tpot_ms": "fast"}, "tpot_ms"),
                                        ({"latency_ms": 5}, "latency_ms")])
def test_bad_sla_values_are_clear_errors(raw: dict, needle: str) -> None:
    with pytest.raises(SpecError, match=needle):
        Sla.from_config(raw)
