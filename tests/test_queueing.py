"""The closed-form scheduler model (mantile/serving/queueing.py) against a discrete-event simulation of the same
scheduler (tests/sim/scheduler_des.py), on a linear step time t(d, p) = 5 ms + 20 us * d + 50 us * p (d decode
sequences, p prefill tokens), 256 running sequences at most, 8192 tokens a step.

Gated within 15%: mean TTFT, mean TPOT and request throughput for closed loops up to a quarter of the running
cap (the regime of fixed-concurrency benchmarks) and at the cap, and for Poisson arrivals at 20% of capacity
(at half and 80% of it for 512 in, 128 out); TTFT and TPOT percentiles where the times are deterministic
(closed loop, N <= 8). Known gaps, measured when this was written and asserted only as bounds so that they can
be tightened: the open-loop TPOT p99 comes out 30% short to 17% long (a long step draws more arrivals, which
make the next step long: the model carries that feedback in the variance of a step's prompts and the
correlation of successive steps, from which the mean TTFT comes within 3% and its p99 within 15% up to 80% of
capacity). History: the TTFT p99 was 25-52% short while it took the 99th percentile of a step's prompt count
for both the arrival step and the own step (a normal approximation), where a time-uniform arrival sees the
length-biased tail of the arrival step (``queueing._ttft_p99``); the open-loop mean TTFT was 12-50% short
above half of capacity until a request's own step counted the others of its length-biased arrival step; the
closed loop's throughput at the running cap came out 15-20% above the simulation's while the simulation timed
its kept requests from the first one's arrival, its whole queued latency included (N / (requests + N) below
the steady rate); timed over the completions the two agree within 1%. On a concave (MoE-like) step at 5% of
capacity the open-loop TPOT came out 17-22% short until a request's steps held itself beside the time-average
B others (B + 1), and at 1024 in, 64 out the linear step's 10-19% short at half to 80% of capacity until a
request's steps after its (length-biased) arrival carried the correlation of step lengths: now within 8%."""

from __future__ import annotations

import numpy as np
import pytest

from mantile.serving import queueing
from mantile.serving.queueing import fixed_point, running_cap, timings
from tests.sim.scheduler_des import simulate

BUDGET, CAP = 8192, 256
SHAPES = [(512, 128), (2048, 512), (1024, 64)]


def step(d: object, p: object) -> np.ndarray:
    return 5e-3 + 2e-5 * np.asarray(d, dtype=float) + 5e-5 * np.asarray(p, dtype=float)


def _pair(S: int, O: int, **load: float) -> tuple[dict[str, float], dict[str, float]]:  # noqa: E741
    cap = float(running_cap(CAP, np.inf, BUDGET, S, O))
    a = timings(step, S, O, cap, BUDGET, **load)
    model = {"ttft_mean": float(a.ttft_s), "ttft_p99": float(a.ttft_p99_s), "tpot_mean": float(a.tpot_s),
             "tpot_p99": float(a.tpot_p99_s), "throughput_req_s": float(a.request_throughput_per_s)}
    sim = simulate(lambda d, p: float(step(d, p)), S, O, int(cap), BUDGET, requests=1500, warmup=300,
                   **{k: (int(v) if k == "concurrency" else v) for k, v in load.items()})  # type: ignore[arg-type]
    return model, sim


def _off(model: dict[str, float], sim: dict[str, float], key: str) -> float:
    return model[key] / sim[key] - 1.0


@pytest.mark.slow
@pytest.mark.parametrize("S,O", SHAPES)
@pytest.mark.parametrize("clients", [1, 8, 64])
def test_closed_loop_means_within_15_percent(S: int, O: int, clients: int) -> None:  # noqa: E741
    model, sim = _pair(S, O, concurrency=clients)
    for key in ("ttft_mean", "tpot_mean", "throughput_req_s"):
        assert abs(_off(model, sim, key)) <= 0.15, (key, model[key], sim[key])
    if clients <= 8:
        for key in ("ttft_p99", "tpot_p99"):
            assert abs(_off(model, sim, key)) <= 0.15, (key, model[key], sim[key])


@pytest.mark.slow
@pytest.mark.parametrize("S,O", SHAPES)
def test_open_loop_at_a_fifth_of_capacity(S: int, O: int) -> None:  # noqa: E741
    cap = float(running_cap(CAP, np.inf, BUDGET, S, O))
    peak = float(timings(step, S, O, cap, BUDGET, concurrency=cap).request_throughput_per_s)
    model, sim = _pair(S, O, request_rate=0.2 * peak)
    for key in ("ttft_mean", "tpot_mean", "throughput_req_s"):
        assert abs(_off(model, sim, key)) <= 0.15, (key, model[key], sim[key])
    assert abs(_off(model, sim, "ttft_p99")) <= 0.15, (model["ttft_p99"], sim["ttft_p99"])  # measured within 6%
    assert -0.25 <= _off(model, sim, "tpot_p99") <= 0.15, (model["tpot_p99"], sim["tpot_p99"])  # measured -6..-16%


def concave_step(d: object, p: object) -> np.ndarray:
    """An MoE-like step: the first tokens are expensive (each routes to experts not yet read), then
    the weights are read and a token costs 2 us: 1 ms + 6 ms (1 - e^(-n/16)) + 2 us n, n = d + p."""
    n = np.asarray(d, dtype=float) + np.asarray(p, dtype=float)
    return 1e-3 + 6e-3 * (1 - np.exp(-n / 16.0)) + 2e-6 * n


@pytest.mark.slow
@pytest.mark.parametrize("S,O", [(512, 128), (1024, 64), (8192, 1024)])
@pytest.mark.parametrize("clients", [4, 8, 64])
def test_prefills_come_whole_on_a_concave_step(S: int, O: int, clients: int) -> None:  # noqa: E741
    """Prompts reach a step whole (a group, or a budget's chunk), so a request's TPOT is the mean of
    decode-only steps and prefill steps, not a step with the mean S/O prefill tokens per sequence: on a
    step time that is not linear in its tokens the two differ by 2-3x at 4-8 clients (measured when
    this was written). Closed loop TPOT and throughput within 15% of the simulation; open loop at a
    fifth of capacity too."""
    cap = float(running_cap(CAP, np.inf, BUDGET, S, O))
    a = timings(concave_step, S, O, cap, BUDGET, concurrency=clients)
    sim = simulate(lambda d, p: float(concave_step(d, p)), S, O, int(cap), BUDGET, requests=600, warmup=150,
                   concurrency=clients)
    assert abs(float(a.tpot_s) / sim["tpot_mean"] - 1) <= 0.15, (float(a.tpot_s), sim["tpot_mean"])
    assert abs(float(a.request_throughput_per_s) / sim["throughput_req_s"] - 1) <= 0.15
    if S <= 1024 and clients == 8:
        peak = float(timings(concave_step, S, O, cap, BUDGET, concurrency=cap).request_throughput_per_s)
        for load in (0.05, 0.2):  # measured: within 4% (at 5%, 17-22% short before a request saw itself)
            rate = load * peak
            a = timings(concave_step, S, O, cap, BUDGET, request_rate=rate)
            sim = simulate(lambda d, p: float(concave_step(d, p)), S, O, int(cap), BUDGET, requests=1500,
                           warmup=300, request_rate=rate)
            assert abs(float(a.tpot_s) / sim["tpot_mean"] - 1) <= 0.15, (load, float(a.tpot_s), sim["tpot_mean"])


@pytest.mark.slow
def test_known_gaps_stay_bounded() -> None:
    """Regimes outside the 15% gate: asserted as the bounds measured, so they can only get better."""
    S, O = 512, 128  # noqa: E741
    model, sim = _pair(S, O, concurrency=CAP)  # at the running cap: the means within the gate, the p99 TTFT not
    for key in ("ttft_mean", "tpot_mean", "throughput_req_s"):
        assert abs(_off(model, sim, key)) <= 0.15, (key, model[key], sim[key])
    assert -0.6 <= _off(model, sim, "ttft_p99") <= 0.15  # measured -52%: resubmitted prompts queue unevenly
    cap = float(running_cap(CAP, np.inf, BUDGET, S, O))
    peak = float(timings(step, S, O, cap, BUDGET, concurrency=cap).request_throughput_per_s)
    for load in (0.5, 0.8):  # measured: mean TTFT within 1%, its p99 within 7%, the TPOT p99 -9% and +17%
        model, sim = _pair(S, O, request_rate=load * peak)
        for key in ("ttft_mean", "tpot_mean", "throughput_req_s", "ttft_p99"):
            assert abs(_off(model, sim, key)) <= 0.15, (load, key, model[key], sim[key])
        assert -0.35 <= _off(model, sim, "tpot_p99") <= 0.25, (load, model["tpot_p99"], sim["tpot_p99"])


def test_open_loop_marks_a_rate_beyond_capacity() -> None:
    """100 requests/s of 512-in, 128-out against at most 256 running sequences: each request holds a
    slot for at least 127 decode steps of >= 5 ms (0.64 s), so 256 slots sustain under 400 requests/s;
    4000/s cannot be sustained, 10/s can."""
    cap = float(running_cap(CAP, np.inf, BUDGET, 512, 128))
    assert bool(timings(step, 512, 128, cap, BUDGET, request_rate=10.0).sustainable)
    assert not bool(timings(step, 512, 128, cap, BUDGET, request_rate=4000.0).sustainable)


def test_fixed_point_by_hand() -> None:
    # x = 0.5 x + 1 has x = 2; a linear map's geometric tail is exact, so one accelerated round lands on it
    calls = []

    def half_plus_one(x: np.ndarray) -> np.ndarray:
        calls.append(1)
        return 0.5 * x + 1.0

    assert fixed_point(half_plus_one, np.array([0.0, 10.0])) == pytest.approx([2.0, 2.0], rel=1e-12)
    assert len(calls) == 4  # the round that lands, then the round that sees no move
    # no fixed point: g drops from 1.0 to 0.98 at x = 1, so plain steps alternate 1.0, 0.98, 1.0 ...:
    # the answer is the middle of the two, 0.99
    assert float(fixed_point(lambda x: np.where(x < 1.0, 1.0, 0.98), np.array(0.5))) == pytest.approx(0.99)


def test_open_loop_running_batch_is_the_fixed_point() -> None:
    """The running batch solves B = lambda (TTFT + (O - 1) TPOT), taken here by brute force: plain
    iterations of that map (and of the mean step inside it) from below until they stop moving. At 30
    requests/s the map is flat near its fixed point (rate ~0.99): 12 plain iterations, the old solver,
    stopped at B = 120.1, 5% short."""
    S, O, lam = 512, 128, 30.0  # noqa: E741
    cap = float(running_cap(CAP, np.inf, BUDGET, S, O))
    B = float(timings(step, S, O, cap, BUDGET, request_rate=lam).running_batch)

    def plain(g: object, x: np.ndarray) -> np.ndarray:
        for _ in range(20000):
            x, last = g(x), x  # type: ignore[operator]
            if abs(float(x) - float(last)) <= 1e-15 * abs(float(x)):
                break
        return x

    solver = queueing.fixed_point
    try:
        queueing.fixed_point = plain  # type: ignore[assignment]
        brute = float(timings(step, S, O, cap, BUDGET, request_rate=lam).running_batch)
    finally:
        queueing.fixed_point = solver
    assert 100.0 < brute < cap
    assert B == pytest.approx(brute, rel=1e-6)


def test_running_cap_by_hand() -> None:
    """The step budget limits B (1 + S/O) <= 8192: S = 2048, O = 128 gives 8192 / 17 = 481.9 -> 481."""
    assert float(running_cap(1024, np.inf, 8192, 2048, 128)) == 481
    assert float(running_cap(256, np.inf, 8192, 2048, 128)) == 256
    assert float(running_cap(1024, 100.0, 0, 2048, 128)) == 100  # no budget: the KV cache decides


def test_one_wave_run_by_hand() -> None:
    """A benchmark run of R = N = 16 requests of 512 tokens in, 128 out, on the linear step, budget 8192:
    the wave's 8192 prompt tokens need room 8192 - 8 (half the wave decoding) a step, so c = 512 / 8184
    and n_b = 16 c = 1.0010 burst steps of step(8, 8184) = 5 + 0.16 + 409.2 = 414.36 ms; prompt i has
    its first token after ceil(i c) steps, smoothed to m = c 17 / 2 + (1 - c) / 2 = 8 c + 1/2 = 1.0005
    steps, so TTFT = 414.57 ms; the last prompt then decodes 127 steps alone with the wave,
    step(16, 0) = 5.32 ms, so the run lasts T = 1.0010 x 414.36 + 127 x 5.32 = 1090.4 ms and serves
    16 / T = 14.67 requests/s."""
    S, O, N = 512, 128, 16  # noqa: E741
    cap = float(running_cap(CAP, np.inf, BUDGET, S, O))
    a = timings(step, S, O, cap, BUDGET, concurrency=N, requests=N)
    c = S / (BUDGET - N / 2)
    t_b = 5e-3 + 2e-5 * 8 + 5e-5 * (BUDGET - 8)
    assert float(a.ttft_s) == pytest.approx((8 * c + 0.5) * t_b, rel=1e-9)
    duration = N * c * t_b + (O - 1) * (5e-3 + 2e-5 * N)
    assert float(a.request_throughput_per_s) == pytest.approx(N / duration, rel=1e-9)
    steady = timings(step, S, O, cap, BUDGET, concurrency=N)
    assert float(a.request_throughput_per_s) < float(steady.request_throughput_per_s)  # the burst costs


def test_a_run_sent_at_once_queues_by_place_by_hand() -> None:
    """R = N = 101 prompts of 512 tokens (128 out) sent at once to one running slot (cap 1), linear step:
    the first has its token after one step(0.5, 512) = 30.61 ms burst step; the wave (of one) ends
    after that and 127 decode steps of step(1, 0) = 5.02 ms: 668.15 ms. Each later prompt waits for
    every one ahead of it, 668.14 ms each (its own prefill step step(0, 512) = 30.6 ms plus 127 decode
    steps), then its own burst step: prompt i has its first token at 668.15 + (i - 2) 668.14 + 30.61 ms.
    The median is prompt 51's, 33.437 s, and the mean over the 101 prompts 33.439 s, half of what
    every queued prompt waiting the steady queue of N - B = 100 would give (66.84 s)."""
    S, O, N = 512, 128, 101  # noqa: E741
    a = timings(step, S, O, 1.0, BUDGET, concurrency=N, requests=N)
    t_b, pure = 5e-3 + 2e-5 * 0.5 + 5e-5 * 512, 5e-3 + 2e-5
    first_wave, busy = t_b + 127 * pure, 5e-3 + 5e-5 * 512 + 127 * pure
    ttft = [t_b] + [first_wave + (i - 2) * busy + t_b for i in range(2, N + 1)]
    assert float(a.ttft_p50_s) == pytest.approx(ttft[50], rel=1e-9)
    assert float(a.ttft_p50_s) == pytest.approx(33.437, rel=1e-4)
    assert float(a.ttft_s) == pytest.approx(sum(ttft) / N, rel=1e-9)
    assert float(a.ttft_p99_s) == pytest.approx(ttft[99], rel=1e-9)  # place 1 + 0.99 x 100 = 100
    assert float(timings(step, S, O, 1.0, BUDGET, concurrency=N).ttft_s) == pytest.approx(
        5e-3 + 5e-5 * 512 + 100 * busy, rel=1e-9)  # the steady closed loop: always 100 ahead


@pytest.mark.parametrize("S,O", [(512, 128), (2048, 256), (32000, 77)])
@pytest.mark.parametrize("cap,N,R", [(16, 64, 64), (16, 160, 160), (64, 256, 256), (16, 64, 256)])
def test_a_queued_run_against_the_simulation(S: int, O: int, cap: int, N: int, R: int) -> None:  # noqa: E741
    """More prompts sent at once than can run (N > the running cap; R = N as an offline benchmark, or
    R = 4 N): mean and median TTFT, mean TPOT and throughput within 15% of the simulation of that
    run (measured when this was written: within 5%, median TTFT within 11%)."""
    cap_ = float(running_cap(cap, np.inf, BUDGET, S, O))
    a = timings(step, S, O, cap_, BUDGET, concurrency=N, requests=R)
    sim = simulate(lambda d, p: float(step(d, p)), S, O, int(cap_), BUDGET, requests=R, warmup=0,
                   concurrency=N, finite=True)
    pairs = (("ttft_mean", a.ttft_s), ("ttft_p50", a.ttft_p50_s), ("tpot_mean", a.tpot_s),
             ("throughput_req_s", a.request_throughput_per_s))
    for key, model in pairs:
        assert abs(float(model) / sim[key] - 1) <= 0.15, (key, float(model), sim[key])


def test_a_long_run_tends_to_the_steady_state() -> None:
    """The burst's share of a run's requests is N / R: at R = 1000 N the run's means are within 1% of
    the steady state's."""
    S, O, N = 2048, 256, 32  # noqa: E741
    cap = float(running_cap(CAP, np.inf, BUDGET, S, O))
    steady = timings(step, S, O, cap, BUDGET, concurrency=N)
    run = timings(step, S, O, cap, BUDGET, concurrency=N, requests=1000 * N)
    for key in ("ttft_s", "tpot_s", "request_throughput_per_s"):
        assert float(getattr(run, key)) == pytest.approx(float(getattr(steady, key)), rel=0.01), key
    assert float(run.ttft_p50_s) == pytest.approx(float(steady.ttft_p50_s), rel=1e-9)  # the burst is 0.1%


@pytest.mark.slow
@pytest.mark.parametrize("fn", [step, concave_step], ids=["linear", "concave"])
@pytest.mark.parametrize("S,O", [(512, 128), (2048, 512)])
@pytest.mark.parametrize("N,mult", [(8, 1), (64, 1), (64, 10), (256, 10)])
def test_finite_run_against_the_simulation(fn: object, S: int, O: int, N: int, mult: int) -> None:  # noqa: E741
    """A benchmark run of R = N (all at once, as trtllm-bench's offline runs) or 10 N requests (as
    InferenceMAX sends) against the simulation of exactly that run, start-up burst and all: mean TTFT,
    TPOT and throughput within 20% (measured when this was written: within 18%; the 10 N runs' TTFT
    is 10-18% short at 2048-token prompts, where resubmitted prompts queue behind each other's prefill
    in the simulation and the steady state does not chain them)."""
    R = N * mult
    cap = float(running_cap(CAP, np.inf, BUDGET, S, O))
    a = timings(fn, S, O, cap, BUDGET, concurrency=N, requests=R)  # type: ignore[arg-type]
    sim = simulate(lambda d, p: float(fn(d, p)), S, O, int(cap), BUDGET, requests=R, warmup=0,  # type: ignore[operator]
                   concurrency=N, finite=True)
    pairs = (("ttft_mean", a.ttft_s), ("tpot_mean", a.tpot_s), ("throughput_req_s", a.request_throughput_per_s))
    for key, model in pairs:
        assert abs(float(model) / sim[key] - 1) <= 0.20, (key, float(model), sim[key])


def test_host_time_per_step_by_hand() -> None:
    """The fixed host time is exposed; the per-sequence part adds to the GPU step, or with an overlap
    scheduler shows only where it is the longer of the two."""
    from mantile.specs.serving import Scheduler

    plain = Scheduler(host_step_us=50, host_per_sequence_us=30)
    overlap = Scheduler(host_step_us=50, host_per_sequence_us=30, host_overlap=True)
    # 100 sequences: 3 ms of host work; a 10 ms GPU step hides it with overlap
    assert plain.wall_s(0.010, 100) == pytest.approx(0.01305)
    assert overlap.wall_s(0.010, 100) == pytest.approx(0.01005)
    # 1000 sequences: 30 ms of host work outlasts the 10 ms GPU step: the step is host-bound
    assert overlap.wall_s(0.010, 1000) == pytest.approx(0.03005)


def test_trtllm_is_host_bound_at_a_large_batch_of_a_small_moe() -> None:
    """Qwen3-30B-A3B (3B active) at 4096 clients on one B200: TensorRT-LLM's 29.4 us of host work per
    sequence per step (conf/serving/trtllm.yaml) caps a rank at 1 / 29.4 us = 34,014 tokens/s, whatever
    the GPU's speed, and a step lasts at least running_batch x 29.4 us."""
    import mantile

    r = mantile.estimate("qwen3_30b_a3b", "nvidia_b200_180gb", concurrency=4096, input_seq=1024, output_seq=1024,
                         serving="trtllm_bench", dtype="fp4")
    assert r["running_batch"] > 1000
    assert r["tpot_ms"] >= r["running_batch"] * 0.0294
    assert r["decode_throughput_tokens_per_s"] <= 1e6 / 29.4 * 1.0001


def _prefill_launches(model: str, hardware: str, S: float, **plan: float) -> float:
    """Kernel launches of the scheduler's pass that prefills one prompt alone, on one device under the sglang
    profile (the cost model's own count: its named kernels, split-K GEMMs twice; the pass is a decode pass of no
    sequences with the prompt riding it, whose decode kernels count too)."""
    from mantile.costs.axes import Axes
    from mantile.costs.step import Setup
    from mantile.engine.spec import resolve_serving, resolve_systems
    from mantile.serving.base import Steps
    from mantile.specs import load_model

    profile = resolve_serving("sglang")
    system = resolve_systems(hardware, profile)[hardware]
    profile = profile.for_device(system.spec.device.name, system.spec.device.memory_gib)
    cols = {k: np.float64(v) for k, v in dict(pp=1, dp=1, ep=1, cp=1, sp=1, concurrency=1, input_seq=S,
                                                output_seq=100, **plan).items()}
    ax = Axes.resolve({**cols, "dtype": "fp8"}, profile.kv_dtype_for, profile.embedding_dtype_for)
    setup = Setup.of(load_model(model), system.spec, system.eff, profile, ax,
                     frozenset({"busy_s", "overhead_s", "comm_s", "launches"}))
    return float(Steps(setup, None).decode(0.0, 1.0, S, mixed_seqs=1.0, mixed_len=S).total.launches)


def test_an_eager_pass_takes_its_launches_host_time() -> None:
    """SGLang 0.5.3-0.5.9 runs a pass with prompt tokens outside CUDA graphs: its host issues the kernels one by
    one at ``eager_launch_us`` = 50.42 us each (conf/serving/sglang.yaml, from SGLang PR #12160: DeepSeek-V3's
    eager one-token prefill, 82.64 ms, over its 1639 launches). One client sending a 2-token prompt to
    DeepSeek-V3 FP8 on 8 H200s: the prefill pass has 1639 launches, its GPU work about 8 ms, so its TTFT is the
    host's 1639 x 50.42 us = 82.64 ms (the measurement the constant came from); vLLM's piecewise CUDA
    graphs keep it GPU-bound. A decode pass within the CUDA-graph batch is unchanged by the constant, one above
    it (600 sequences at tp 8, graph batch 512) is held to its launches' host time too."""
    import dataclasses

    import mantile
    from mantile.specs import load_serving

    launches = _prefill_launches("deepseek_v3", "nvidia_h200_141gb", 2.0, tp=8)
    assert launches == 1639
    kw = dict(model="deepseek_v3", hardware="nvidia_h200_141gb", tp=8, dtype="fp8", concurrency=1, input_seq=2,
              output_seq=100)
    r = mantile.estimate(serving="sglang", **kw)
    assert r["ttft_ms"] == pytest.approx(1639 * 0.05042, rel=1e-9)
    assert r["ttft_ms"] == pytest.approx(82.64, rel=1e-3)
    assert mantile.estimate(serving="vllm", **kw)["ttft_ms"] < 20.0
    sglang = load_serving("sglang")
    graphed = dataclasses.replace(sglang, scheduler=dataclasses.replace(sglang.scheduler, eager_launch_us=0.0))
    assert r["tpot_ms"] == pytest.approx(mantile.estimate(serving=graphed, **kw)["tpot_ms"], rel=1e-9)
    big = dict(kw, concurrency=600, input_seq=1024)
    eager, in_graph = mantile.estimate(serving="sglang", **big), mantile.estimate(serving=graphed, **big)
    assert eager["running_batch"] == in_graph["running_batch"] == 600
    assert eager["tpot_ms"] > in_graph["tpot_ms"]


def test_engines_pick_their_scheduler_defaults_by_device() -> None:
    """vLLM's OpenAI server: 8192 tokens / 1024 sequences a step on GPUs of >= 70 GiB that are not an A100,
    2048 / 256 elsewhere; SGLang's chunked prefill: 2048 below 35 GiB, 4096 below 60, 8192 below 160 GiB,
    16384 above."""
    import mantile
    from mantile.specs import load_serving

    sglang = load_serving("sglang")
    assert sglang.for_device("NVIDIA B200", 179.1).scheduler.max_num_batched_tokens == 16384
    assert sglang.for_device("NVIDIA H200", 140.4).scheduler.max_num_batched_tokens == 8192
    assert sglang.for_device("NVIDIA L4", 22.0).max_prefill_tokens == 2048
    assert sglang.for_device("NVIDIA L40S", 44.4).max_prefill_tokens == 4096
    assert sglang.for_device("NVIDIA L40S", 44.4).memory_reserve.graph_batch_tp4 == 160
    # 100-token prompts, 10-token outputs: a step holds B decodes and B * 100 / 10 prompt tokens, so the
    # budget caps B at floor(2048 / 11) = 186 on an A100 and floor(8192 / 11) = 744 on an H100
    kw = dict(model="llama_3.1_8b", concurrency=2000, input_seq=100, output_seq=10, serving="vllm")
    assert mantile.estimate(hardware="nvidia_a100_80gb", **kw)["running_batch"] == 186
    assert mantile.estimate(hardware="nvidia_h100_80gb", **kw)["running_batch"] == 744


def test_sglang_reserves_memory_by_its_own_formula() -> None:
    """SGLang 0.5.3-0.5.9 with no --mem-fraction-static (server_args._handle_gpu_memory_settings), by hand:
    reserved MiB = 512 + 1.5 x chunk + 2 x cuda_graph_max_bs + tp x pp x 128 (at least 10240 above 60 GiB),
    fraction = round((memory - reserved) / memory, 3) with memory the nvidia-smi MiB."""
    import mantile

    gb = 2**30 / 1e9

    def usable(hw: str, **kw: object) -> float:
        return mantile.estimate(model="llama_3.1_8b", hardware=hw, serving="sglang", input_seq=1000,
                                output_seq=100, concurrency=16, **kw)["usable_memory_gb_per_device"]

    # H100 (79.6 GiB = 81510.4 MiB), tp 1: 512 + 12288 + 512 + 128 = 13440 -> 68070.4 / 81510.4 = 0.8351 -> 0.835
    assert usable("nvidia_h100_80gb") == pytest.approx(0.835 * 79.6 * gb, rel=1e-9)
    # tp 8: graph batch 512, 8 devices: 512 + 12288 + 1024 + 1024 = 14848 -> 66662.4 / 81510.4 = 0.8178 -> 0.818
    assert usable("nvidia_h100_80gb", tp=8) == pytest.approx(0.818 * 79.6 * gb, rel=1e-9)
    # B200 (179.1 GiB = 183398.4 MiB), tp 4: chunk 16384, graph 512: 512 + 24576 + 1024 + 512 = 26624
    # -> 156774.4 / 183398.4 = 0.8548 -> 0.855
    assert usable("nvidia_b200_180gb", tp=4) == pytest.approx(0.855 * 179.1 * gb, rel=1e-9)
    # data-parallel attention on 8 H200s (143769.6 MiB): + 512 x 8 x (3 + 1.5) = 18432 above a 300 graph batch:
    # 512 + 12288 + 1024 + 1024 + 18432 = 33280 -> 110489.6 / 143769.6 = 0.7685 -> 0.769
    assert usable("nvidia_h200_141gb", tp=8, ep=8, dp_attention=1) == pytest.approx(0.769 * 140.4 * gb, rel=1e-9)
    # a stated reserve (--mem-fraction-static) replaces the formula, for SGLang and for vLLM's 0.9 alike
    assert usable("nvidia_h100_80gb", memory_reserve_fraction=0.2) == pytest.approx(0.8 * 79.6 * gb, rel=1e-9)
    assert mantile.estimate(model="llama_3.1_8b", hardware="nvidia_h100_80gb", serving="vllm", input_seq=1000,
                            output_seq=100, concurrency=16, memory_reserve_fraction=0.2
                            )["usable_memory_gb_per_device"] == pytest.approx(0.8 * 79.6 * gb, rel=1e-9)


def test_sglang_kv_pool_is_what_the_weights_leave_of_its_fraction() -> None:
    """The reserve holds activations and CUDA graphs: the KV budget is the fraction less the weights (and the
    fp32 logits of the running batch), with no activation estimate of Mantile's own taken off again."""
    import mantile

    r = mantile.estimate(model="llama_3.1_8b", hardware="nvidia_h100_80gb", serving="sglang", input_seq=1000,
                         output_seq=100, concurrency=16)
    logits = r["max_batch_size"] * 128256 * 4 / 1e9  # fp32 logits of one position per sequence
    assert r["kv_cache_budget_gb_per_device"] == pytest.approx(
        r["usable_memory_gb_per_device"] - r["weights_gb_per_device"] - logits, rel=1e-9)


def test_a_negative_memory_reserve_term_is_an_error_naming_it() -> None:
    import dataclasses

    from mantile.specs import SpecError, load_serving
    from mantile.specs._load import build
    from mantile.specs.serving import ServingProfile

    data = dataclasses.asdict(load_serving("sglang"))
    data["memory_reserve"]["per_graph_batch_mib"] = -2
    with pytest.raises(SpecError, match="memory_reserve.per_graph_batch_mib"):
        build(ServingProfile, data, "conf/serving/sglang.yaml")


def test_trtllm_kv_cache_takes_its_fraction_of_the_free_memory() -> None:
    """TensorRT-LLM's KvCacheConfig.free_gpu_memory_fraction (0.9) is a fraction of the memory the weights
    and activations leave (TensorRT-LLM docs/source/reference/memory.md), not of the device: DeepSeek-R1 in
    FP8 on four B200s leaves about 22 GB a GPU, of which the KV cache takes 90% (20 GB), where 0.9 of the
    whole device minus the weights left 3 GB; vLLM's gpu_memory_utilization stays a fraction of the device."""
    import mantile
    from mantile.costs import memory
    from mantile.specs import load_hardware, load_model

    gb = 1e9
    kw = dict(model="deepseek_r1", hardware="nvidia_b200_180gb", tp=4, dtype="fp8", input_seq=8192,
              output_seq=1024, concurrency=16)
    r = mantile.estimate(serving="trtllm", **kw)
    m = load_hardware("nvidia_b200_180gb").device.memory_bytes
    act = 8192 * memory.activation_per_token(load_model("deepseek_r1"), 4, 1, 1, 2.0)  # max_num_tokens x bf16
    w = r["weights_gb_per_device"] * gb
    assert r["usable_memory_gb_per_device"] * gb == pytest.approx(m - 0.1 * (m - w - act), rel=1e-9)
    assert r["kv_cache_budget_gb_per_device"] > 15 and r["max_batch_size"] >= 16
    v = mantile.estimate(serving="vllm", **kw)
    assert v["usable_memory_gb_per_device"] * gb == pytest.approx(0.9 * m, rel=1e-9)


def test_trtllm_bench_caps_the_batch_by_its_own_kv_estimate_per_attention_rank() -> None:
    """trtllm-bench's calc_engine_setting (tensorrt_llm/bench/build/tuning.py), by hand for DeepSeek-R1 NVFP4 on
    four B200s (DEP4), 1k/1k: stored elements (682.6e9 - 1.85e9 embedding) x (0.5 + 1/16) + 1.85e9 = 384.8e9,
    x 0.5 bytes = 179.2 GiB of engine; 0.95 x (4 x 179.1 - 179.2) = 510.3 GiB; its KV estimate 2 x 61 layers x
    128 heads x 56 x 1 byte = 874,496 B a token, 1.668 GiB a 2,048-token request: 305.9 requests, rounded up
    to 384 a rank; four attention-DP ranks run 1,536 (the latent cache alone would hold thousands)."""
    import mantile
    from mantile.costs.axes import Axes
    from mantile.serving.scheduler import trtllm_bench_max_batch
    from mantile.specs import load_model

    ax = Axes.resolve({"tp": np.array([4.0]), "pp": np.array([1.0]), "ep": np.array([4.0]), "dp": np.array([1.0]),
                       "cp": np.array([1.0]), "sp": np.array([1.0]),
                       "input_seq": np.array([1024.0]), "output_seq": np.array([1024.0]),
                       "batch_size": np.array([1.0]), "dtype": "fp4", "kv_dtype": "fp8"})
    batch = trtllm_bench_max_batch(load_model("deepseek_r1"), 179.1, ax)
    assert batch.tolist() == [384.0]
    r = mantile.estimate(model="deepseek_r1", hardware="nvidia_b200_180gb", serving="trtllm_bench", tp=4, ep=4,
                         dp_attention=True, dtype="fp4", kv_dtype="fp8", input_seq=1024, output_seq=1024,
                         concurrency=3000)
    assert r["running_batch"] == 4 * 384 and r["max_batch_size"] > 4 * 384


def test_trtllm_caps_bind_each_attention_dp_rank() -> None:
    """TensorRT-LLM's max_batch_size (2048) and max_num_tokens (8192) are each attention-DP rank's: Qwen3-30B-A3B
    on two H200s with attention DP runs 2 x 2048 sequences at 100/100 (the KV cache holds more), not 2048."""
    import mantile

    kw = dict(model="qwen3_30b_a3b", hardware="nvidia_h200_141gb", serving="trtllm", tp=2, ep=2, input_seq=100,
              output_seq=100, concurrency=8000)
    r = mantile.estimate(dp_attention=True, **kw)
    assert r["running_batch"] == 4096 and r["max_batch_size"] > 4096
    assert mantile.estimate(**kw)["running_batch"] == 2048  # one executor over tensor-parallel attention


def test_drain_by_hand() -> None:
    """The end of a run with exponential outputs (mean O = 100 tokens, so m = 99 decode steps left, memoryless)
    from w = 8 running, no one waiting: w e^(-t/m) still run t steps on, until the last one ends after m H_8
    steps (H_8 = 761/280 = 2.717857). A constant step of 10 ms takes m H_8 x 10 ms = 2.69068 s. An affine step
    a + s b (a = 10 ms, s = 1 ms a sequence): m [int_1^8 (a + s b) / b db + (H_8 - ln 8) (a + s)]
    = 99 [a ln 8 + 7 s + (H_8 - ln 8) (a + s)] = 99 x (0.0207944 + 0.007 + 0.0070226) = 3.44688 s."""
    H8 = 761 / 280
    const = queueing._drain(lambda d, p: np.full(np.shape(d), 0.01), 8.0, 100.0)
    assert float(const) == pytest.approx(99 * H8 * 0.01, rel=1e-5)
    affine = queueing._drain(lambda d, p: 0.01 + 0.001 * np.asarray(d, dtype=float), 8.0, 100.0)
    by_hand = 99 * (0.01 * np.log(8) + 7 * 0.001 + (H8 - np.log(8)) * 0.011)
    assert float(affine) == pytest.approx(by_hand, rel=1e-5)
    assert float(by_hand) == pytest.approx(3.44688, rel=1e-5)
    # one request alone: its own output, O - 1 decode steps on average, as with a fixed length
    assert float(queueing._drain(lambda d, p: np.full(np.shape(d), 0.01), 1.0, 100.0)) == pytest.approx(
        0.99, rel=1e-8)
    assert [float(queueing.harmonic(n)) for n in (1, 2, 3, 8)] == pytest.approx([1, 1.5, 11 / 6, H8], rel=1e-8)


def test_exponential_outputs_end_a_run_with_its_drain_by_hand() -> None:
    """R = N = 16 prompts sent at once (the one-wave run of ``test_one_wave_run_by_hand``): with exponential
    outputs the wave's 127 decode steps at step(16, 0) give way to the drain from 16 running: the run's
    duration changes by drain - 127 step(16, 0); its TTFT, all the burst's, stays. The burst is one step
    (n_b = 1.001), so a request has 0 to 1.001 burst steps left after its first token, 0.0079 of an output's
    127 on average: its mean TPOT is pure + (t_b - pure) burst_share(1.001 / 127), above the fixed-length
    form's (the burst step it decodes through weighs more in a short output)."""
    S, O, N = 512, 128, 16  # noqa: E741
    cap = float(running_cap(CAP, np.inf, BUDGET, S, O))
    fixed = timings(step, S, O, cap, BUDGET, concurrency=N, requests=N)
    varied = timings(step, S, O, cap, BUDGET, concurrency=N, requests=N, varied=True)
    drain = float(queueing._drain(lambda d, p: step(d, 0.0), float(N), float(O)))
    longer = drain - (O - 1) * (5e-3 + 2e-5 * N)
    assert longer > 0  # the last of 16 exponential outputs ends well after the mean
    assert N / float(varied.request_throughput_per_s) == pytest.approx(
        N / float(fixed.request_throughput_per_s) + longer, rel=1e-9)
    for key in ("ttft_s", "ttft_p50_s", "running_batch"):
        assert float(getattr(varied, key)) == float(getattr(fixed, key)), key
    c = S / (BUDGET - N / 2)
    t_b, pure = 5e-3 + 2e-5 * 8 + 5e-5 * (BUDGET - 8), 5e-3 + 2e-5 * N
    share = float(queueing.burst_share(N * c / (O - 1)))
    assert float(varied.tpot_s) == pytest.approx(pure + (t_b - pure) * share, rel=1e-9)
    assert float(varied.tpot_s) > float(fixed.tpot_s)


@pytest.mark.parametrize("S,O,cap,N,R", [(256, 200, 64, 256, 256), (512, 128, 256, 1000, 1000),
                                         (2048, 256, 1000, 1000, 1000), (512, 128, 64, 64, 640),
                                         (256, 200, 256, 256, 256)])
@pytest.mark.parametrize("fn", [step, concave_step], ids=["linear", "concave"])
def test_exponential_outputs_against_the_simulation(fn: object, S: int, O: int, cap: int, N: int,  # noqa: E741
                                                     R: int) -> None:
    """A finite run whose outputs are exponential about O (``varied``) against the simulation of that run with
    drawn lengths (the mean of three seeds; their spread is up to +-10% at R = 256): throughput within 10%
    (measured when this was written: within 7%, mostly 2%; the fixed-length model is 10-50% above the same
    runs, as far as the drain is long beside the run)."""
    cap_ = float(running_cap(cap, np.inf, BUDGET, S, O))
    a = timings(fn, S, O, cap_, BUDGET, concurrency=N, requests=R, varied=True)  # type: ignore[arg-type]
    sims = [simulate(lambda d, p: float(fn(d, p)), S, O, int(cap_), BUDGET, requests=R, warmup=0,  # type: ignore[operator]
                     concurrency=N, finite=True, outputs="exponential", seed=seed)["throughput_req_s"]
            for seed in range(3)]
    assert float(a.request_throughput_per_s) == pytest.approx(float(np.mean(sims)), rel=0.10)


def _closed_loop_against_the_simulation(fn: object, S: int, O: int, cap: int, N: int, R: int,  # noqa: E741
                                        outputs: str) -> tuple[queueing.QueueTimings, dict[str, float]]:
    """The closed loop of N clients with ``outputs`` lengths (``R`` > 0: a run of R requests, else a steady state of
    2,000) analytically and as the mean of two seeds of the simulation (ttft_mean, tpot_mean, throughput_req_s)."""
    cap_ = float(running_cap(cap, np.inf, BUDGET, S, O))
    a = timings(fn, S, O, cap_, BUDGET, concurrency=N, requests=R, varied=True,  # type: ignore[arg-type]
                uniform=outputs == "uniform")
    run = dict(requests=R, warmup=0, finite=True) if R else dict(requests=2000, warmup=400)
    sims = [simulate(lambda d, p: float(fn(d, p)), S, O, int(cap_), BUDGET, concurrency=N,  # type: ignore[operator]
                     outputs=outputs, seed=seed, **run) for seed in range(2)]  # type: ignore[arg-type]
    return a, {k: float(np.mean([s[k] for s in sims])) for k in ("ttft_mean", "tpot_mean", "throughput_req_s")}


@pytest.mark.parametrize("fn", [step, concave_step], ids=["linear", "concave"])
@pytest.mark.parametrize("S,O,cap,N,R", [(512, 128, 1000, 8, 0), (256, 200, 1000, 64, 0), (2048, 256, 1000, 8, 0),
                                         (512, 128, 64, 64, 640), (256, 200, 16, 16, 160)])
def test_exponential_outputs_desynchronize_a_closed_loop_against_the_simulation(
        fn: object, S: int, O: int, cap: int, N: int, R: int) -> None:  # noqa: E741
    """With exponential outputs a closed loop's requests end one at a time, so its clients' next prompts
    arrive one at a time at step boundaries, at the loop's own rate (``queueing._desynced``), not in the
    groups fixed lengths keep (the grouped form was 2-17x the simulation's mean TTFT here). Against the
    simulation with drawn lengths (mean of two seeds; steady states of 2,000 requests, or runs of R = 10 N):
    mean TTFT within 25%, TPOT and throughput within 10% (measured when this was written: TTFT within 11%,
    TPOT 7%, throughput 7%). Outside this grid the TTFT is less close where prompts of 2,048 tokens load the
    step's budget (64 clients on the linear step: 2.2x the simulation, its M/D/1 wait too long) and at 256
    clients (22-53% short: the simulation's waits spike)."""
    a, sim = _closed_loop_against_the_simulation(fn, S, O, cap, N, R, "exponential")
    cap_ = float(running_cap(cap, np.inf, BUDGET, S, O))
    assert float(a.ttft_s) == pytest.approx(sim["ttft_mean"], rel=0.25)
    assert float(a.tpot_s) == pytest.approx(sim["tpot_mean"], rel=0.10)
    assert float(a.request_throughput_per_s) == pytest.approx(sim["throughput_req_s"], rel=0.10)
    grouped = timings(fn, S, O, cap_, BUDGET, concurrency=N, requests=R)  # type: ignore[arg-type]
    assert float(grouped.ttft_s) > 1.3 * sim["ttft_mean"]  # fixed lengths' groups: the form this replaces


def test_exp1_and_the_burst_share_by_hand() -> None:
    """E1 from Abramowitz & Stegun's approximations against scipy's (within 2e-7 over 1e-6 .. 200); the burst
    share phi averaged over a uniform place: 0 with no burst, 1 - 1/(2X) ... -> 1 for a burst much longer than
    an output, and at X = 1, Phi(1) = e^-1 + E1(1)/2 + (1 - 2/e)/2 = 0.367879 + 0.109692 + 0.132121 = 0.609692
    (by hand from E1(1) = 0.219384)."""
    from scipy.special import exp1 as scipy_exp1

    x = np.array([1e-6, 1e-3, 0.1, 0.5, 1.0, 1.01, 2.0, 5.0, 10.0, 50.0, 200.0])
    np.testing.assert_allclose(queueing.exp1(x), scipy_exp1(x), rtol=2e-7)
    assert float(queueing.burst_share(1.0)) == pytest.approx(np.exp(-1) + 0.219384 / 2 + (1 - 2 / np.e) / 2, rel=1e-5)
    assert float(queueing.burst_share(1e-9)) == pytest.approx(0.0, abs=1e-6)
    assert float(queueing.burst_share(1000.0)) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("fn", [step, concave_step], ids=["linear", "concave"])
@pytest.mark.parametrize("S,O,cap,N", [(512, 128, 256, 256), (2048, 256, 910, 1000), (256, 200, 256, 1000)])
def test_a_run_sent_at_once_with_exponential_outputs_against_the_simulation(
        fn: object, S: int, O: int, cap: int, N: int) -> None:  # noqa: E741
    """All prompts sent at once (R = N), exponential outputs: a first-wave request's mean TPOT counts the burst
    steps a short output decodes through (``burst_share``). Against the simulation (mean of two seeds): mean
    TPOT within 30% (measured when this was written: -4% to +27%; the fixed-length form was 14-53% short
    on the linear step), throughput within 15%."""
    cap_ = float(running_cap(cap, np.inf, BUDGET, S, O))
    a = timings(fn, S, O, cap_, BUDGET, concurrency=N, requests=N, varied=True)  # type: ignore[arg-type]
    sims = [simulate(lambda d, p: float(fn(d, p)), S, O, int(cap_), BUDGET, concurrency=N,  # type: ignore[operator]
                     outputs="exponential", seed=seed, requests=N, warmup=0, finite=True) for seed in range(2)]
    assert float(a.tpot_s) == pytest.approx(float(np.mean([s["tpot_mean"] for s in sims])), rel=0.30)
    assert float(a.request_throughput_per_s) == pytest.approx(float(np.mean([s["throughput_req_s"] for s in sims])),
                                                              rel=0.15)


def test_log_gamma_against_the_standard_library() -> None:
    """Stirling's series at x + 6, less the six logarithms between, against math.lgamma from 1 to 10^5."""
    import math

    x = np.array([1.0, 1.5, 2.0, 3.7, 8.0, 9.5, 100.0, 5000.0, 1e5])
    np.testing.assert_allclose(queueing.log_gamma(x), [math.lgamma(v) for v in x], rtol=1e-10, atol=1e-10)


def test_uniform_drain_by_hand() -> None:
    """Uniform outputs (decode steps uniform on (0, 2m), m = O - 1 = 99) draining from w = 8 running.
    Every one at its whole length (a run whose requests all came in its first wave): the longest of 8 uniform
    lengths ends after 2m 8/9 = 176 steps, so a constant 10 ms step gives 1.76 s; an affine step a + s b gives
    2m / 8 [a 7 + s (64 - 1) / 2] + 2m / 72 (a + s) = 24.75 (0.07 + 0.0315) + 2.75 x 0.011 = 2.54237 s.
    Part done in a refilled loop: the rest of a length-biased request has survival (1 - t / 2m)^2 and the
    longest of 8 ends after 2m (1 - I_8), I_8 = int_0^1 (1 - u^2)^8 du = (2 4 ... 16) / (3 5 ... 17) =
    10321920 / 34459425 = 0.299538, so 138.691 steps (1.38691 s at 10 ms). One alone: its mean length (whole,
    99 steps) or its mean rest (E[L^2] / (2 E[L]) = 2m / 3 = 66 steps)."""
    const = lambda d, p: np.full(np.shape(d), 0.01)  # noqa: E731
    affine = lambda d, p: 0.01 + 0.001 * np.asarray(d, dtype=float)  # noqa: E731
    whole = dict(uniform=True, fresh=True)
    assert float(queueing._drain(const, 8.0, 100.0, **whole)) == pytest.approx(198 * 8 / 9 * 0.01, rel=1e-9)
    assert float(queueing._drain(affine, 8.0, 100.0, **whole)) == pytest.approx(
        198 / 8 * (0.01 * 7 + 0.001 * 63 / 2) + 198 / 72 * 0.011, rel=1e-9)
    assert float(queueing._drain(affine, 8.0, 100.0, **whole)) == pytest.approx(2.54237, rel=1e-5)
    I8 = 10321920 / 34459425
    refilled = dict(uniform=True, fresh=False)
    assert float(queueing._drain(const, 8.0, 100.0, **refilled)) == pytest.approx(198 * (1 - I8) * 0.01, rel=1e-9)
    assert float(queueing._drain(const, 8.0, 100.0, **refilled)) == pytest.approx(1.38691, rel=1e-5)
    assert float(queueing._drain(const, 1.0, 100.0, **whole)) == pytest.approx(0.99, rel=1e-9)
    assert float(queueing._drain(const, 1.0, 100.0, **refilled)) == pytest.approx(0.66, rel=1e-9)
    # per point: the exponential form where uniform is False
    mixed = queueing._drain(const, np.array([8.0, 8.0]), 100.0, uniform=np.array([False, True]), fresh=True)
    assert mixed.tolist() == pytest.approx([float(queueing._drain(const, 8.0, 100.0)), 1.76], rel=1e-9)


def test_uniform_burst_share_by_hand() -> None:
    """A first-wave request's share of burst steps with outputs uniform on (0, 2m): Phi(X) / X with
    Phi(X) = X^2 (3/8 + ln(2 / X) / 4) up to X = 2, X - 1/2 beyond: 3/8 + ln 2 / 4 = 0.548287 at X = 1, 3/4 at
    X = 2, 7/8 at X = 4; tends to 0 with no burst."""
    share = lambda x: float(queueing.burst_share(x, uniform=True))  # noqa: E731
    assert share(1.0) == pytest.approx(0.375 + np.log(2) / 4, rel=1e-12)
    assert share(1.0) == pytest.approx(0.548287, rel=1e-6)
    assert share(2.0) == pytest.approx(0.75, rel=1e-12)
    assert share(4.0) == pytest.approx(0.875, rel=1e-12)
    assert share(1e-9) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("fn", [step, concave_step], ids=["linear", "concave"])
@pytest.mark.parametrize("S,O,cap,N,R", [(256, 200, 64, 256, 256), (2048, 256, 1000, 1000, 1000),
                                         (512, 128, 64, 64, 640), (256, 200, 16, 16, 160), (512, 128, 1000, 8, 0),
                                         (2048, 256, 1000, 8, 0)])
def test_uniform_outputs_against_the_simulation(fn: object, S: int, O: int, cap: int, N: int,  # noqa: E741
                                                R: int) -> None:
    """Outputs uniform from none to twice the mean (SGLang's random dataset without a range ratio; the simulation
    draws 1 + uniform(0 .. 2 (O - 1)) tokens), runs of R requests (R = N: all sent at once) and steady loops
    (R = 0): the clients fall out of step as with exponential lengths (``_desynced``), a finite run drains
    (``_drain``, whole lengths at R = N, a refilled loop's rests beyond). Against the mean of two seeds:
    throughput within 15%, mean TTFT within 25%, mean TPOT within 15% (measured when this was written:
    throughput -5% to +11%, TTFT -0% to +16%, TPOT +1% to +11%; the fixed-length forms were up to 73% above
    on throughput and 2-17x on TTFT, the exponential ones up to 44% below on throughput)."""
    a, sim = _closed_loop_against_the_simulation(fn, S, O, cap, N, R, "uniform")
    assert float(a.request_throughput_per_s) == pytest.approx(sim["throughput_req_s"], rel=0.15)
    assert float(a.ttft_s) == pytest.approx(sim["ttft_mean"], rel=0.25)
    assert float(a.tpot_s) == pytest.approx(sim["tpot_mean"], rel=0.15)
