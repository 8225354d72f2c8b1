"""Disaggregated serving (mantile/serving/disagg.py, mantile.estimate_disagg): hand-derived values and
properties that could fail."""

from __future__ import annotations

import numpy as np
import pytest

import mantile
from mantile.costs import comm
from mantile.engine.spec import model_spec, resolve_serving, resolve_systems
from mantile.serving import disagg
from mantile.specs import SpecError

H100 = "nvidia_h100_80gb"
KW = dict(model="llama_3.3_70b", input_seq=2048, output_seq=256)


def _row(**kw: object) -> dict:
    args = dict(KW, prefill={"hardware": H100, "tp": 4, "instances": 2}, decode={"hardware": H100, "tp": 8})
    args.update(kw)
    return mantile.estimate_disagg(**args)  # type: ignore[arg-type]


def test_mva_matches_the_recursion_by_hand() -> None:
    # s = 1, P = 1, Z = 1: n=1: R=1, X=1/2, Q=1/2; n=2: R=1.5, X=2/2.5=0.8
    R, X, wait = disagg.closed_loop_mva(1.0, 1.0, 1.0, np.array([1.0, 2.0]))
    assert R.tolist() == pytest.approx([1.0, 1.5])
    assert X.tolist() == pytest.approx([0.5, 0.8])
    assert wait.tolist() == [0.0, 0.0]  # no decode slots given: the decode side never binds
    # many clients: throughput tends to the station's capacity P / s = 2 per second
    _, X, _ = disagg.closed_loop_mva(1.0, 2.0, 1.0, 500.0)
    assert X == pytest.approx(2.0, rel=5e-3) and X < 2.0


def test_decode_slots_bound_the_loop_by_hand() -> None:
    """s = 1, P = 1, Z = 1 as above, plus 2 decode slots held 4 s each: at most 2 / 4 = 0.5 requests/s.
    n = 1: R = 1, X = 1 / (1 + 4 + 1) = 1/6 (below the bound, no wait); n = 2: R = 1 + 1/6 = 7/6,
    X = 2 / (7/6 + 5) = 12/37 = 0.324; n = 3: Q = 12/37 x 7/6 = 14/37, R = 51/37, X = 3 / (51/37 + 5) = 111/236
    = 0.470; n = 4: Q = 111/236 x 51/37 = 0.648, R = 1.648, X = 4 / 6.648 = 0.602 >= 0.5: the decode side
    binds from n* = 4 (R* = 1.648); at 10 clients X = 0.5 and each request waits 10 / 0.5 - (1.648 + 4 + 1)
    = 13.35 s for a slot. A pure delay of 4 s instead (no slots) would give X -> 1 (the prefill station's)."""
    R, X, wait = disagg.closed_loop_mva(1.0, 1.0, 1.0, np.array([1.0, 3.0, 10.0]), 4.0, 2.0)
    assert X.tolist() == pytest.approx([1 / 6, 111 / 236, 0.5])
    assert wait.tolist() == pytest.approx([0.0, 0.0, 10 / 0.5 - (1 + 111 / 236 * 51 / 37 + 4 + 1)])
    assert R[2] == pytest.approx(1 + 111 / 236 * 51 / 37)
    _, X_delay, _ = disagg.closed_loop_mva(1.0, 1.0, 5.0, 10.0)
    assert float(X_delay) > 0.5  # without the slots the loop would pass the decode side's bound


def test_a_decode_side_short_of_slots_makes_clients_wait_for_them() -> None:
    """Four prefill instances feeding one decode instance of Llama-3.1-8B on H100s: the decode side's
    slots (its running cap) bound the requests/s at cap / ((O - 1) TPOT at the cap); beyond it TTFT grows
    by the wait for a slot, where the loop used to pass the bound (the decode side a pure delay)."""
    kw = dict(model="llama_3.1_8b", input_seq=1024, output_seq=256)
    sides = dict(prefill=dict(hardware="nvidia_h100_80gb", tp=1, instances=4, serving="vllm"),
                 decode=dict(hardware="nvidia_h100_80gb", tp=1, instances=1, serving="vllm"))
    rows = [mantile.estimate_disagg(**kw, **sides, concurrency=c) for c in (64, 2048)]  # type: ignore[arg-type]
    cap = rows[1]["running_batch"]
    bound = cap / ((256 - 1) * rows[1]["tpot_ms"] / 1e3)
    assert rows[1]["request_throughput_per_s"] == pytest.approx(bound, rel=1e-9)
    assert rows[0]["request_throughput_per_s"] < bound
    assert rows[1]["ttft_ms"] > 2048 / bound * 1e3 - (255 * rows[1]["tpot_ms"]) - 1e3  # most of the cycle waits


def test_kv_transfer_is_the_whole_kv_cache_over_parallel_streams() -> None:
    # Llama 3.3 70B: 80 layers x (K + V) x 8 KV heads x 128 x 2 bytes = 327,680 B per token; 2048 tokens
    # = 671,088,640 B, sent by min(4, 8) = 4 prefill devices over the network (4 + 8 > 8 GPUs per NVLink node)
    r = _row(concurrency=1)
    assert r["kv_link"] == "network"
    sys_ = resolve_systems(H100, resolve_serving("vllm"))[H100]
    net = comm.Network.of(sys_.spec, sys_.eff)
    expected = net.call_s + net.out_latency_s + 671_088_640 / 4 / net.out_bytes_per_s
    assert r["kv_transfer_ms"] == pytest.approx(expected * 1e3)


def test_one_nvlink_domain_moves_kv_over_nvlink_and_faster() -> None:
    rack = dict(prefill={"hardware": "nvidia_nvl72_rack", "tp": 4}, decode={"hardware": "nvidia_nvl72_rack", "tp": 8})
    nv = _row(concurrency=1, **rack)
    assert nv["kv_link"] == "nvlink"
    assert nv["kv_transfer_ms"] < _row(concurrency=1)["kv_transfer_ms"] / 5


def test_whole_deployment_counts_in_throughput_per_device() -> None:
    r = _row(concurrency=32)
    assert r["num_devices"] == 2 * 4 + 8
    assert r["throughput_tokens_per_s_per_device"] == pytest.approx(r["request_throughput_per_s"] * 256 / 16)
    assert r["running_batch"] == 32  # one decode instance holds every client
    assert r["e2e_latency_ms"] == pytest.approx(r["ttft_ms"] + 255 * r["tpot_ms"])


def test_a_lone_prompt_waits_for_its_whole_prefill_pass() -> None:
    """A prefill worker running passes of b_p prompts finishes a prompt with its pass: a lone client's TTFT
    is the pass time t_p plus the transfer, not t_p / b_p (its share of the worker's capacity)."""
    args = dict(KW, concurrency=1, prefill={"hardware": H100, "tp": 4, "batch_size": 8},
                decode={"hardware": H100, "tp": 8})
    r = mantile.estimate_disagg(**args)  # type: ignore[arg-type]
    from mantile.engine.disagg import side_args, sides
    from mantile.specs import load_model

    pre, dec = sides(load_model("llama_3.3_70b"), side_args("prefill", args["prefill"]),
                     side_args("decode", args["decode"]), 2048, 256, 1)
    t_p = float(np.ravel(pre.prefill_pass_s()[0])[0])
    assert r["ttft_ms"] == pytest.approx(t_p * 1e3 + r["kv_transfer_ms"], rel=1e-9)
    one = mantile.estimate_disagg(**{**args, "prefill": {"hardware": H100, "tp": 4, "batch_size": 1}})
    assert r["ttft_ms"] > 4 * one["ttft_ms"]  # eight 2048-token prompts in one pass: compute-bound


def test_a_finite_runs_first_wave_queues_at_the_prefill_side() -> None:
    """num_requests R: the first wave of C prompts arrives at once. One prefill instance of one prompt a pass
    and C = 4: the wave's prompts leave after 1, 2, 3 and 4 passes, 2.5 t_p on average (+ transfer); with
    R = 8 the other 4 requests see the steady state; p99: the wave's last pass (8 x 1% < 4 requests)."""
    from mantile.engine.disagg import side_args, sides
    from mantile.specs import load_model

    args = dict(KW, concurrency=4, prefill={"hardware": H100, "tp": 4}, decode={"hardware": H100, "tp": 8})
    pre, _ = sides(load_model("llama_3.3_70b"), side_args("prefill", args["prefill"]),
                   side_args("decode", args["decode"]), 2048, 256, 1)
    t_p = float(np.ravel(pre.prefill_pass_s()[0])[0]) * 1e3
    steady = mantile.estimate_disagg(**args)  # type: ignore[arg-type]
    wave = mantile.estimate_disagg(**args, num_requests=4)  # type: ignore[arg-type]
    tr = steady["kv_transfer_ms"]
    assert wave["ttft_ms"] == pytest.approx(2.5 * t_p + tr, rel=1e-9)
    assert wave["ttft_p99_ms"] == pytest.approx(4 * t_p + tr, rel=1e-9)
    mixed = mantile.estimate_disagg(**args, num_requests=8)  # type: ignore[arg-type]
    assert mixed["ttft_ms"] == pytest.approx((4 * (2.5 * t_p + tr) + 4 * steady["ttft_ms"]) / 8, rel=1e-9)
    assert mixed["tpot_ms"] == steady["tpot_ms"] and mixed["num_requests"] == 8
    with pytest.raises(SpecError, match="num_requests"):
        mantile.estimate_disagg(**{**args, "concurrency": None, "request_rate": 2.0}, num_requests=8)


def test_ttft_includes_the_transfer_and_grows_with_load() -> None:
    low, high = _row(concurrency=1), _row(concurrency=512)
    assert low["ttft_ms"] > low["kv_transfer_ms"] > 0
    assert high["ttft_ms"] > low["ttft_ms"] and high["tpot_ms"] > low["tpot_ms"]


def test_open_loop_beyond_prefill_capacity_is_not_sustainable() -> None:
    ok, too_much = _row(request_rate=2.0), _row(request_rate=500.0)
    assert ok["valid"] and ok["request_throughput_per_s"] == pytest.approx(2.0)
    assert ok["ttft_p99_ms"] >= ok["ttft_ms"]
    assert not too_much["valid"] and too_much["ttft_ms"] is None and "capacity" in too_much["reason"]


def test_matched_ratio_balances_the_two_sides() -> None:
    row = _row(concurrency=64)
    # the same deployment's sides, one instance each: a prefill instance does b/t_p requests/s, a decode
    # instance B/((O-1) TPOT); at P/D = matched ratio both sides carry the same request rate
    model = model_spec("llama_3.3_70b")[1]
    sys_ = resolve_systems(H100, resolve_serving("vllm"))[H100]
    one = lambda v: np.array([v])  # noqa: E731
    col = lambda tp, out: {"tp": one(tp), "pp": one(1), "dp": one(1), "ep": one(1), "cp": one(1),  # noqa: E731
                           "sp": one(1), "embedding_tp": one(tp), "batch_size": one(1), "input_seq": one(2048),
                           "output_seq": one(out), "dtype": "bf16"}
    pre = disagg.Side.of(model, sys_.spec, sys_.eff, resolve_serving("vllm"), col(4, 1))
    dec = disagg.Side.of(model, sys_.spec, sys_.eff, resolve_serving("vllm"), col(8, 256))
    ratio = float(disagg.matched_instances(pre, dec, 64.0)[0])
    t_p = float(pre.prefill_pass_s()[0][0])
    assert ratio * (1 / t_p) == pytest.approx(64 / (255 * row["tpot_ms"] / 1e3), rel=1e-6)


def test_bad_side_keys_name_the_field() -> None:
    with pytest.raises(SpecError, match="decode.tpp"):
        _row(concurrency=1, decode={"hardware": H100, "tpp": 8})
    with pytest.raises(SpecError, match="prefill.tp"):
        _row(concurrency=1, prefill={"hardware": H100, "tp": 0})


def test_validate_predicts_a_decode_side_row_with_its_plan_and_skips_the_others() -> None:
    from mantile.validate import predictions

    base = {"kind": "published", "model": "llama_3.3_70b", "hardware": H100, "serving": "vllm", "dtype": "bf16",
            "tp": "8", "ep": "", "dp_attention": "", "num_devices": "16", "concurrency": "64", "input_seq": "2048",
            "output_seq": "256", "disagg": "decode", "metric": "throughput_tokens_per_s_per_device", "value": "100",
            "source": "synthetic"}
    preds = predictions([base, {**base, "tp": ""}, {**base, "disagg": "1P1D"}], skips={}, passed=[])
    assert len(preds) == 1
    # two decode instances of tp 8 share the 64 clients: 32 sequences each, 32 / TPOT tokens/s over 8 GPUs
    r = _row(concurrency=64, prefill={"hardware": H100, "tp": 8}, decode={"hardware": H100, "tp": 8, "instances": 2})
    assert preds[0].predicted == pytest.approx(32 / (r["tpot_ms"] / 1e3) / 8)


def test_a_trtllm_decode_instance_holds_its_cap_on_every_attention_dp_rank() -> None:
    """TensorRT-LLM's max_batch_size (2048) binds each attention-DP rank: a decode instance of Qwen3-30B-A3B
    on two H200s with attention DP holds 2 x 2048 clients at 100/100 (its KV cache holds more)."""
    dec = {"hardware": "nvidia_h200_141gb", "tp": 2, "ep": 2, "dp_attention": True, "serving": "trtllm"}
    r = mantile.estimate_disagg("qwen3_30b_a3b", 100, 100, {"hardware": "nvidia_h200_141gb", "serving": "trtllm"},
                                dec, concurrency=8000)
    assert r["running_batch"] == 4096


def test_an_sglang_decode_instance_holds_its_request_pool_on_every_attention_dp_rank() -> None:
    """SGLang with --enable-dp-attention runs a scheduler per DP rank, each with its own request pool
    (max_running_requests per scheduler, up to the 4,096-entry pool), while the step's token budget stays
    the replica's (chunked_prefill_size // dp_size a rank): a decode instance of Qwen3-30B-A3B on two H200s
    with attention DP holds 8,000 clients at 100/100, where one scheduler's pool would stop at 4,096
    (its KV cache holds more than 8,000 of these short sequences)."""
    dec = {"hardware": "nvidia_h200_141gb", "tp": 2, "ep": 2, "dp_attention": True, "serving": "sglang"}
    pre = {"hardware": "nvidia_h200_141gb", "serving": "sglang"}
    r = mantile.estimate_disagg("qwen3_30b_a3b", 100, 100, pre, dec, concurrency=8000)
    assert r["running_batch"] == 8000
    plain = mantile.estimate_disagg("qwen3_30b_a3b", 100, 100, pre, {**dec, "dp_attention": False}, concurrency=8000)
    assert plain["running_batch"] == 4096


def test_an_sglang_prefill_worker_pays_its_eager_pass_host_time() -> None:
    """SGLang's prefill pass runs outside CUDA graphs (``Scheduler.eager_wall_s``, as in the aggregated
    scheduler): a lone 2-token prompt on a DeepSeek-V3 FP8 TP8 prefill worker takes its pass's launches x
    50.42 us, the host's dispatch, where a vLLM worker's pass stays GPU-bound. The worker's pass is a pure
    prefill pass (1394 launches: 70.3 ms); the aggregated scheduler's pass for the same prompt also counts its
    decode kernels at no sequences (1639: 82.64 ms, tests/test_queueing.py, the pass the constant came from)."""
    from mantile.engine.disagg import side_args, sides
    from mantile.specs import load_model

    model, h200 = load_model("deepseek_v3"), "nvidia_h200_141gb"
    walls = {}
    for engine in ("sglang", "vllm"):
        side = {"hardware": h200, "tp": 8, "serving": engine, "dtype": "fp8"}
        pre, _ = sides(model, side_args("prefill", side), side_args("decode", side), 2, 100, 1)
        walls[engine] = float(np.ravel(pre.prefill_pass_s()[0])[0])
        launches = float(np.ravel(pre.steps.prefill(1.0, 2.0).total.launches)[0])
    assert launches == 1394
    assert walls["sglang"] == pytest.approx(launches * 50.42e-6, rel=1e-9)
    assert walls["vllm"] < 0.25 * walls["sglang"]
