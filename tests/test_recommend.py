"""recommend (mantile/analysis/recommend.py): its best answer equals brute force on a small space, the
SLA holds for every row, launch commands use the engines' flags, and bad input names the field."""

from __future__ import annotations

import numpy as np
import pytest

import mantile
from mantile.engine.disagg import side_system
from mantile.engine.spec import model_spec
from mantile.serving import system
from mantile.specs import SpecError

SPACE = dict(model="llama_3.1_8b", input_seq=1024, output_seq=128, request_rate=6.0, ttft_ms=400, tpot_ms=25,
             hardware=["nvidia_h100_80gb", "nvidia_a100_80gb"], serving=["vllm"], dtype=["bf16"], tp=[1, 2],
             max_devices=16)


@pytest.fixture(scope="module")
def rec() -> mantile.analysis.recommend.Recommendation:  # type: ignore[name-defined]
    return mantile.recommend(**SPACE, disaggregated=False)


def _brute_force() -> list[tuple[int, float, str, int, int]]:
    """Every plan x every replica count 1..16 evaluated exactly; (devices, $/h, hardware, tp, replicas) of
    each feasible deployment."""
    _, model = model_spec("llama_3.1_8b")
    out = []
    for hw_id in SPACE["hardware"]:
        hw, eff, profile = side_system(hw_id, "vllm")
        for tp in SPACE["tp"]:
            r = np.arange(1, 17 // tp + 1)
            n = r.size
            one = lambda v, n=n: np.full(n, v)  # noqa: E731
            cols = {"tp": one(tp), "pp": one(1), "dp": one(1), "ep": one(1), "cp": one(1), "sp": one(1),
                    "embedding_tp": one(tp), "input_seq": one(1024), "output_seq": one(128), "dtype": "bf16",
                    "request_rate": 6.0 / r}
            res = system.evaluate(model, hw, eff, profile, cols).columns()
            with np.errstate(invalid="ignore"):
                ok = res["valid"] & res["fits"] & (res["ttft_p99_ms"] <= 400) & (res["tpot_p99_ms"] <= 25)
            for k in np.flatnonzero(ok):
                devices = int(r[k] * tp)
                out.append((devices, devices * hw.system.price_usd_per_device_hour, hw_id, tp, int(r[k])))
    return out


def test_best_equals_brute_force(rec) -> None:  # type: ignore[no-untyped-def]
    brute = _brute_force()
    assert brute, "the small space must have feasible deployments"
    assert rec.by_gpus["num_devices"][0] == min(b[0] for b in brute)
    assert rec.by_usd_per_hour["usd_per_hour"][0] == pytest.approx(min(b[1] for b in brute))


def test_every_row_meets_the_sla(rec) -> None:  # type: ignore[no-untyped-def]
    df = rec.deployments
    assert df.height > 0
    assert (df["ttft_p99_ms"] <= 400).all() and (df["tpot_p99_ms"] <= 25).all()
    # throughput is the offered load: 6 requests/s x 128 tokens
    assert np.allclose(df["throughput_tokens_per_s"].to_numpy(), 6.0 * 128, rtol=1e-6)


def test_launch_commands_use_engine_flags(rec) -> None:  # type: ignore[no-untyped-def]
    cmd = " ".join(rec.commands["fewest GPUs"])
    assert cmd.startswith("vllm serve meta-llama/Llama-3.1-8B")
    assert "--tensor-parallel-size" in cmd


def test_disaggregated_deployments_meet_the_sla() -> None:
    rec = mantile.recommend(**dict(SPACE, hardware=["nvidia_h100_80gb"]), disaggregated=True)
    dis = rec.deployments.filter(mode="disaggregated")
    assert dis.height > 0
    assert (dis["ttft_p99_ms"] <= 400).all() and (dis["tpot_p99_ms"] <= 25).all()
    row = dis.row(0, named=True)
    assert row["num_devices"] == row["prefill_instances"] * row["tp"] + row["decode_instances"] * row["decode_tp"]


def test_bad_input_names_the_field() -> None:
    with pytest.raises(SpecError, match="hardware"):
        mantile.recommend(**dict(SPACE, hardware=["nvidia_h999"]))
    with pytest.raises(SpecError, match="request_rate"):
        mantile.recommend(**dict(SPACE, request_rate=-1))
