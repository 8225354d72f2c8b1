"""Plan a deployment: the cheapest ways to serve a request rate of one workload under a TTFT and TPOT
target, over hardware systems, serving engines, dtypes, plans (tp, pp, ep, attention DP), aggregated
replicas and disaggregated prefill/decode instances.

The search is exact on the cost model but does not evaluate every point. It rests on monotonicity:

- a plan's latencies fall as replicas are added (each replica gets less of the load), so the fewest
  replicas meeting the SLA is found from below, never past it;
- a decode step's time rises with its batch and a prefill never gets cheaper with more load, so a
  plan whose prefill of one prompt misses the TTFT target, or whose decode step of one sequence misses
  the TPOT target, is dropped at once;
- a lower bound on the replicas a plan needs comes from its engine step: a replica serving lambda_r
  requests/s at mean TPOT t decodes at least lambda_r (O - 1) t sequences per step while prefilling
  lambda_r t S prompt tokens (Little's law), so with d the largest decode batch whose step (carrying
  d S / (O - 1) prefill tokens) meets the TPOT target, lambda_r <= d / ((O - 1) step(d)) and
  r >= lambda (O - 1) step(d) / d (``_largest_batch``; it assumes, as the cost model gives, that
  requests per second rise with the load).
  Lower bounds of devices, dollars per hour (x price) and energy per token (x idle power, the least a
  device draws) rank the candidates; groups (a hardware system and engine) are then verified exactly
  (``system.evaluate`` under the open-loop load at each candidate replica count, vectorized over the
  group's plans whose bound can still match the best found) best bound first, and the search stops when
  the best verified deployment of each
  objective beats the lower bound of every group not yet verified (branch and bound): the best by GPUs
  and by dollars per hour are exact; the rest of each ranking, the energy ranking and the Pareto front
  are over the groups verified.

Disaggregated deployments (``serving.disagg``) are solved in closed form per pair of side plans of one
group: P from the largest prefill utilization whose M/D/1 TTFT (plus the KV transfer) meets the target,
D from B_T of the decode plan (the open-loop decode batch B = lambda / D (O - 1) TPOT(B) has a fixed point
at or below B_T exactly when lambda (O - 1) step(B_T) / B_T <= D); each pair is then verified by
``engine.disagg.evaluate_disagg``. Prefill instances run one prompt per pass.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from mantile.analysis.launch import launch_commands
from mantile.analysis.pareto import pareto_front
from mantile.costs import comm, memory
from mantile.engine.disagg import evaluate_disagg, side_system
from mantile.engine.spec import check_axis
from mantile.serving import disagg, system
from mantile.specs import SpecError
from mantile.specs.catalog import load_hardware
from mantile.specs.model import ModelSpec

ENGINES = ("vllm", "sglang", "trtllm")
LADDER = np.unique(np.round(2.0 ** (np.arange(0, 57) / 4.0)))  # decode batches 1 .. 2^14, 4 per octave
RHO_BISECTIONS = 40
WINDOW = 12  # replica counts r_lb .. r_lb + 11 tried in the first exact pass (one vectorized call)
WINDOW_FACTORS = (1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
#: objectives the branch and bound is exact for; energy per token is ranked over the groups verified for
#: these (its lower bound, every device at idle power, is too loose to prune by)
BOUNDED = ("num_devices", "usd_per_hour")
#: engines by device vendor: vLLM runs on NVIDIA (CUDA), AMD (ROCm), Google TPU and Intel Gaudi (vLLM
#: installation docs: GPU, TPU and the vllm-gaudi plugin); SGLang on NVIDIA and AMD GPUs (SGLang install
#: docs); TensorRT-LLM on NVIDIA only
ENGINE_VENDORS = {"vllm": ("nvidia", "amd", "google", "intel"), "sglang": ("nvidia", "amd"),
                  "trtllm": ("nvidia",), "trtllm_bench": ("nvidia",)}
OBJECTIVES = {"num_devices": "fewest GPUs", "usd_per_hour": "lowest dollars per hour",
              "energy_j_per_token": "lowest energy per token"}


@dataclass(frozen=True)
class Target:
    """The workload, the load and the SLA."""

    input_seq: int
    output_seq: int
    request_rate: float
    ttft_ms: float
    tpot_ms: float
    percentile: str = "p99"  # p99 | mean

    def columns(self) -> tuple[str, str]:
        if self.percentile == "mean":
            return "ttft_ms", "tpot_ms"
        return "ttft_p99_ms", "tpot_p99_ms"


@dataclass
class Recommendation:
    """``deployments``: every verified deployment meeting the SLA (one row each); ``by_*``: the best
    ``top`` by each objective; ``pareto``: tokens/s per GPU against tokens/s per user; ``commands``:
    launch commands of the best by each objective; ``searched``: counts of what was pruned and verified."""

    deployments: pl.DataFrame
    by_gpus: pl.DataFrame
    by_usd_per_hour: pl.DataFrame
    by_energy: pl.DataFrame
    pareto: pl.DataFrame
    commands: dict[str, list[str]]
    searched: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        rows = lambda df: df.to_dicts()  # noqa: E731
        return {"by_gpus": rows(self.by_gpus), "by_usd_per_hour": rows(self.by_usd_per_hour),
                "by_energy": rows(self.by_energy), "pareto": rows(self.pareto), "commands": self.commands,
                "searched": self.searched, "seconds": self.seconds, "deployments": self.deployments.height}


@dataclass
class _Group:
    """One hardware system and engine: its plans, their sides and bounds."""

    hardware_id: str
    serving_id: str
    plans: list[dict[str, Any]]
    replica_devices: np.ndarray
    runs: np.ndarray  # valid plans that fit (a possible side of a disaggregated deployment)
    ok: np.ndarray  # plans not pruned (one request meets the SLA)
    r_lb: np.ndarray  # replica lower bound (aggregated)
    b_t: np.ndarray  # largest decode batch meeting TPOT
    step_t: np.ndarray  # decode step at b_t, s
    prefill_s: np.ndarray  # prefill pass of one prompt, s
    price: float
    idle_w: float
    rows: list[dict[str, Any]] = field(default_factory=list)
    verified: bool = False

    def bounds(self, rate_tokens: float) -> dict[str, float]:
        devices = np.where(self.ok, self.r_lb * self.replica_devices, np.inf)
        best = float(np.min(devices, initial=np.inf))
        return {"num_devices": best, "usd_per_hour": best * self.price,
                "energy_j_per_token": best * self.idle_w / rate_tokens}


def _plan_space(model: ModelSpec, dtypes: Sequence[str], tps: Sequence[int], pps: Sequence[int],
                eps: Sequence[int] | None, dp_attention: Sequence[bool] | None) -> list[dict[str, Any]]:
    """Plans to search: dense models tp x pp; MoE models also ep (1 or tp by default) and attention DP
    (only with ep = tp > 1)."""
    out = []
    for dtype in dtypes:
        for tp in tps:
            for pp in pps:
                ep_choices = eps if eps is not None else ((1, tp) if model.is_moe and tp > 1 else (1,))
                for ep in sorted(set(ep_choices)):
                    if ep > 1 and not model.is_moe:
                        continue
                    dpa_choices = dp_attention if dp_attention is not None else (False, True)
                    for dpa in dpa_choices:
                        if dpa and not (model.is_moe and ep == tp and tp > 1):
                            continue
                        out.append({"dtype": dtype, "tp": tp, "pp": pp, "ep": ep, "dp_attention": bool(dpa)})
    return out


def _cols(plans: list[dict[str, Any]], t: Target, output_seq: int, load: dict[str, np.ndarray]) -> dict[str, Any]:
    n = len(plans)
    col = lambda k: np.array([p[k] for p in plans])  # noqa: E731
    tp = col("tp")
    cols: dict[str, Any] = {"tp": tp, "pp": col("pp"), "dp": np.ones(n, int), "ep": col("ep"),
                            "cp": np.ones(n, int), "sp": np.ones(n, int), "embedding_tp": tp,
                            "input_seq": np.full(n, t.input_seq), "output_seq": np.full(n, output_seq),
                            "dtype": col("dtype"), "dp_attention": col("dp_attention"),
                            "redundant_experts": np.zeros(n, int), "expert_imbalance": np.ones(n), **load}
    return cols


def _group(model: ModelSpec, hardware_id: str, serving_id: str, plans: list[dict[str, Any]], t: Target,
           max_devices: int) -> _Group:
    """A group's plans with the cheap bounds, from one vectorized pass over plans x a batch ladder:
    fits, the prefill and the decode step of one request, B_T and the replica lower bound r_lb."""
    hw, eff, profile = side_system(hardware_id, serving_id)
    n, k = len(plans), LADDER.size
    rep = [p for p in plans for _ in range(k)]
    side = disagg.Side.of(model, hw, eff, profile, _cols(rep, t, t.output_seq, {"batch_size": np.ones(n * k)}))
    first = np.arange(n) * k  # each plan's batch-1 point
    res = side.result
    devices = np.asarray(res.num_devices, dtype=float)[first]
    one_pass = side.prefill_pass_s()[0][first]
    cap = side.decode_cap()[first]
    target_tpot, target_ttft = t.tpot_ms / 1e3, t.ttft_ms / 1e3
    runs = np.asarray(res.valid & res.fits)[first] & (cap >= 1) & (devices <= max_devices)
    budget = float(side.serving.scheduler.max_num_batched_tokens)  # the engine's budget on this GPU
    b_t, step_t, d_mix, step_mix, step1 = _largest_batch(side, n, np.maximum(cap, 1.0), target_tpot, t, budget)
    ok = runs & (one_pass <= target_ttft) & (step1 <= target_tpot)
    r_lb = np.maximum(np.ceil(t.request_rate * (t.output_seq - 1) * step_mix / d_mix - 1e-9), 1.0)
    ok &= r_lb * devices <= max_devices
    price = hw.system.price_usd_per_device_hour
    return _Group(hardware_id, serving_id, plans, devices, runs, ok, r_lb, b_t, step_t, one_pass,
                  math.inf if price is None else float(price), float(hw.device.idle_w or 0.0))


def _largest_batch(side: disagg.Side, n: int, cap: np.ndarray, target_s: float, t: Target, budget: float
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per plan, from one ladder of decode batches d (1, 2^(1/4), ... in whole numbers; ``side`` holds each
    plan repeated over ``LADDER``): (d_pure, step at d_pure, d_mixed, step at d_mixed, pure step at 1).

    d_pure: the first batch whose pure decode step misses ``target_s`` (or the cap): at or above the largest
    batch that meets it, so d / step(d) bounds a decode instance's rate from above.
    d_mixed: the same for the aggregated engine's step, which carries the prefill of the requests that
    replace the finishing ones: d / (O - 1) requests per step, d S / (O - 1) prefill tokens (at most the
    step's token budget). A replica serving lambda_r requests/s with mean TPOT t decodes at least
    lambda_r (O - 1) t sequences while prefilling lambda_r t S tokens per step, so lambda_r <=
    d / ((O - 1) step(d, d S / (O - 1))) at the largest d whose step meets the target: with d_mixed (above
    it) this is an upper bound of lambda_r, assuming requests per second rise with the load."""
    k = LADDER.size
    d = np.minimum(np.tile(LADDER, n), np.repeat(cap, k))
    pure = side.decode_step_s(d)[0].reshape(n, k)
    tokens = d * t.input_seq / (t.output_seq - 1)
    room = budget if budget > 0 else np.inf
    mixed = side.decode_step_s(d, np.minimum(tokens, room))[0].reshape(n, k)
    d = d.reshape(n, k)
    mixed = np.where(tokens.reshape(n, k) > room, np.inf, mixed)  # more prefill than a step takes: not sustainable
    rows = np.arange(n)
    out = []
    for step in (pure, mixed):
        meets = step <= target_s
        first_miss = np.where(meets.all(axis=1), k - 1, np.argmax(~meets, axis=1))
        dd, ss = d[rows, first_miss], step[rows, first_miss]
        ss = np.where(np.isfinite(ss), ss, pure[rows, first_miss])  # past the budget: the pure step bounds it
        out += [dd, ss]
    return out[0], out[1], out[2], out[3], pure[:, 0]


def _feasible(out: dict[str, np.ndarray], t: Target) -> np.ndarray:
    ttft, tpot = t.columns()
    with np.errstate(invalid="ignore"):
        return (np.asarray(out["valid"]) & np.asarray(out["fits"]) & (out[ttft] <= t.ttft_ms)
                & (out[tpot] <= t.tpot_ms))


def _verify_aggregated(model: ModelSpec, g: _Group, t: Target, max_devices: int,
                       incumbent: dict[str, float]) -> None:
    """The fewest replicas of each surviving plan meeting the SLA, exactly (see module docstring). Plans
    whose lower bound cannot match the best verified GPUs or dollars per hour (``incumbent``) are skipped:
    they cannot be the best of either."""
    hw, eff, profile = side_system(g.hardware_id, g.serving_id)
    lb_devices = g.r_lb * g.replica_devices
    useful = (lb_devices <= incumbent["num_devices"]) | (lb_devices * g.price <= incumbent["usd_per_hour"])
    idx = np.flatnonzero(g.ok & useful)
    if not idx.size:
        return
    r_max = np.floor(max_devices / g.replica_devices[idx])
    cands = [np.minimum(g.r_lb[idx] + k, r_max) for k in range(WINDOW)]
    cands += [np.minimum(np.ceil(g.r_lb[idx] * f), r_max) for f in WINDOW_FACTORS] + [r_max]
    lo = g.r_lb[idx] - 1  # infeasible (below the bound)
    hi = np.full(idx.size, np.inf)  # the fewest feasible replicas seen
    best: dict[int, dict[str, Any]] = {}
    trial = np.stack(cands, axis=1)  # plans x candidates
    rows = np.arange(idx.size)
    while rows.size:
        k = trial.shape[1]
        plans = [g.plans[idx[a]] for a in np.repeat(rows, k)]
        rate = t.request_rate / trial.reshape(-1)
        out = system.evaluate(model, hw, eff, profile, _cols(plans, t, t.output_seq, {"request_rate": rate})).columns()
        ok = _feasible(out, t).reshape(trial.shape)
        for m, a in enumerate(int(x) for x in rows):
            for c in range(k):
                r = trial[m, c]
                if ok[m, c] and r < hi[a]:
                    hi[a] = r
                    best[a] = {key: v[m * k + c] for key, v in out.items()}
                elif not ok[m, c] and lo[a] < r < hi[a]:
                    lo[a] = r
        # between the last miss and the first hit: 8 points per round (a 9-ary search), one call per round
        rows = np.flatnonzero(np.isfinite(hi) & (hi - lo > 1))
        steps = np.arange(1, 9) / 9.0
        trial = np.minimum(lo[rows, None] + np.ceil((hi[rows, None] - lo[rows, None]) * steps), hi[rows, None])
    for a, i in enumerate(int(x) for x in idx):
        if a in best:
            g.rows.append(_aggregated_row(g, g.plans[i], int(hi[a]), best[a], t))


def _aggregated_row(g: _Group, plan: dict[str, Any], replicas: int, out: dict[str, Any], t: Target
                    ) -> dict[str, Any]:
    devices = replicas * g.replica_devices[g.plans.index(plan)]
    power = replicas * float(out["power_w"])
    thr = replicas * float(out["throughput_tokens_per_s"])
    return _row("aggregated", g, plan, devices, out, t, power, thr, replicas=replicas)


def _row(mode: str, g: _Group, plan: dict[str, Any], devices: float, out: dict[str, Any], t: Target, power: float,
         thr: float, **extra: Any) -> dict[str, Any]:
    usd = devices * g.price if math.isfinite(g.price) else None
    return {"mode": mode, "hardware_id": g.hardware_id, "serving": g.serving_id, "dtype": plan["dtype"],
            "tp": plan["tp"], "pp": plan["pp"], "ep": plan["ep"], "dp_attention": plan["dp_attention"],
            "replicas": extra.get("replicas"), "prefill_instances": extra.get("prefill_instances"),
            "decode_instances": extra.get("decode_instances"), "decode_tp": extra.get("decode_tp"),
            "decode_ep": extra.get("decode_ep"), "decode_dp_attention": extra.get("decode_dp_attention"),
            "num_devices": int(devices), "ttft_ms": float(out["ttft_ms"]), "ttft_p99_ms": float(out["ttft_p99_ms"]),
            "tpot_ms": float(out["tpot_ms"]), "tpot_p99_ms": float(out["tpot_p99_ms"]),
            "throughput_tokens_per_s": thr, "throughput_tokens_per_s_per_device": thr / devices,
            "tokens_per_s_per_user": 1e3 / float(out["tpot_ms"]), "power_w": power,
            "energy_j_per_token": power / thr, "usd_per_hour": usd,
            "cost_usd_per_million_tokens": None if usd is None else usd / 3600.0 / thr * 1e6}


def _rho_max(t_p: np.ndarray, transfer: np.ndarray, t: Target) -> np.ndarray:
    """Largest prefill utilization whose TTFT (mean or p99, ``serving.disagg``) meets the target."""
    budget = t.ttft_ms / 1e3 - t_p - transfer
    lo, hi = np.zeros_like(budget), np.full_like(budget, disagg.MAX_RHO)
    for _ in range(RHO_BISECTIONS):
        r = (lo + hi) / 2
        wait = r / (2.0 * (1.0 - r)) * t_p
        if t.percentile != "mean":
            wait = np.where(r > 0.01, wait / r * np.log(r / 0.01), 0.0)
        meets = wait <= budget
        lo, hi = np.where(meets, r, lo), np.where(meets, hi, r)
    return np.where(budget > 0, lo, 0.0)


def _disaggregated(model: ModelSpec, g: _Group, t: Target, max_devices: int) -> None:
    """Pairs of side plans of one group with the same dtype: P and D in closed form, then verified by
    ``evaluate_disagg`` (vectorized over the pairs; a side that misses gets one more instance, twice)."""
    hw, eff, profile = side_system(g.hardware_id, g.serving_id)
    net = comm.Network.of(hw, eff)
    pre_ok = np.flatnonzero(g.runs & (g.prefill_s <= t.ttft_ms / 1e3))
    pairs = [(i, j) for i in pre_ok for j in np.flatnonzero(g.ok) if g.plans[i]["dtype"] == g.plans[j]["dtype"]]
    if not pairs:
        return
    pi, dj = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    kv = np.array([memory.kv_cache_bytes(model, 1.0, t.input_seq, 1.0, 1.0, 1.0,
                                         _kv_bytes(profile, g.plans[i]["dtype"])) for i in pi])
    streams = np.minimum(g.replica_devices[pi], g.replica_devices[dj])
    transfer = np.asarray(comm.p2p(net, kv / streams, True))  # over the network: a bound (NVLink is faster)
    rho = _rho_max(g.prefill_s[pi], transfer, t)
    with np.errstate(divide="ignore"):
        P = np.ceil(t.request_rate * g.prefill_s[pi] / rho - 1e-9)
    D = np.ceil(t.request_rate * (t.output_seq - 1) * g.step_t[dj] / g.b_t[dj] - 1e-9)
    keep = (rho > 0) & (P * g.replica_devices[pi] + D * g.replica_devices[dj] <= max_devices)
    pi, dj, P, D = pi[keep], dj[keep], P[keep], D[keep]
    ttft_col, tpot_col = t.columns()
    for dtype in sorted({g.plans[i]["dtype"] for i in pi}):
        sel = np.flatnonzero([g.plans[i]["dtype"] == dtype for i in pi])
        side = lambda ix, dt=dtype: {  # noqa: E731
            "hardware": g.hardware_id, "serving": g.serving_id, "dtype": dt, "batch_size": 1,
            **{k: np.array([g.plans[i][k] for i in ix]) for k in ("tp", "pp", "ep", "dp_attention")}}
        p_n, d_n = P[sel].copy(), D[sel].copy()
        for _ in range(3):
            out = evaluate_disagg(model, side(pi[sel]), side(dj[sel]), t.input_seq, t.output_seq, p_n, d_n,
                                  request_rate=t.request_rate)
            with np.errstate(invalid="ignore"):
                ttft_ok, tpot_ok = out[ttft_col] <= t.ttft_ms, out[tpot_col] <= t.tpot_ms
            met = np.asarray(out["valid"] & out["fits"]) & ttft_ok & tpot_ok
            if met.all():
                break
            p_n = np.where(~met & ~ttft_ok, p_n + 1, p_n)
            d_n = np.where(~met & ttft_ok, d_n + 1, d_n)
        for m in np.flatnonzero(met):
            one = {k: np.asarray(v).reshape(-1)[m] for k, v in out.items()}
            dec = g.plans[dj[sel][m]]
            g.rows.append(_row("disaggregated", g, g.plans[pi[sel][m]], float(one["num_devices"]), one, t,
                               float(one["power_w"]), float(one["throughput_tokens_per_s"]),
                               prefill_instances=int(p_n[m]), decode_instances=int(d_n[m]), decode_tp=dec["tp"],
                               decode_ep=dec["ep"], decode_dp_attention=dec["dp_attention"]))


def _distinct(hardware: Sequence[str]) -> list[str]:
    """Hardware ids minus multi-node copies of a system already listed (same device and scale-up domain:
    ``nvidia_h100_80gb_x4`` is four ``nvidia_h100_80gb`` nodes, and replicas are counted anyway)."""
    seen, out = set(), []
    for h in hardware:
        hw = load_hardware(h)
        key = (hw.device.name, hw.interconnect.scale_up.domain_size, hw.interconnect.scale_up.name)
        if key not in seen:
            seen.add(key)
            out.append(h)
    return out


def _kv_bytes(profile: Any, dtype: str) -> float:
    from mantile.specs.dtypes import BYTES_PER_ELEMENT

    return float(BYTES_PER_ELEMENT[profile.kv_dtype_for(dtype)])


def recommend(model: ModelSpec, model_id: str, target: Target, hardware: Sequence[str],
              serving: Sequence[str] = ENGINES, dtypes: Sequence[str] = ("bf16", "fp8"),
              tp: Sequence[int] = (1, 2, 4, 8), pp: Sequence[int] = (1,), ep: Sequence[int] | None = None,
              dp_attention: Sequence[bool] | None = None, disaggregated: bool = True, max_devices: int = 256,
              top: int = 5) -> Recommendation:
    """Deployments of ``model`` meeting ``target`` (see the module docstring), best first."""
    start = time.perf_counter()
    for d in dtypes:
        check_axis("dtype", d)
    if target.percentile not in ("p99", "mean"):
        raise SpecError("recommend", "sla.percentile", target.percentile, ("p99", "mean"))
    plans = _plan_space(model, dtypes, tp, pp, ep, dp_attention)
    groups = [_group(model, h, s, plans, target, max_devices) for h in _distinct(hardware) for s in serving
              if load_hardware(h).device.vendor in ENGINE_VENDORS.get(s, (load_hardware(h).device.vendor,))]
    rate_tokens = target.request_rate * target.output_seq
    searched = {"groups": len(groups), "plans": len(plans) * len(groups),
                "pruned_by_bounds": int(sum((~g.ok).sum() for g in groups)), "groups_verified": 0}

    def unresolved() -> str | None:
        """The first objective whose best verified row does not yet beat every unverified group's bound."""
        rows = [r for g in groups for r in g.rows]
        pending = [g.bounds(rate_tokens) for g in groups if not g.verified]
        for obj in BOUNDED:
            best = min((v for r in rows if (v := r[obj]) is not None), default=math.inf)
            bound = min((b[obj] for b in pending), default=math.inf)
            if math.isfinite(bound) and best > bound:
                return obj
        return None

    while (obj := unresolved()) is not None:
        g = min((g for g in groups if not g.verified), key=lambda g: g.bounds(rate_tokens)[obj])
        rows = [r for gr in groups for r in gr.rows]
        incumbent = {k: min((v for r in rows if (v := r[k]) is not None), default=math.inf) for k in BOUNDED}
        _verify_aggregated(model, g, target, max_devices, incumbent)
        if disaggregated:
            _disaggregated(model, g, target, max_devices)
        g.verified = True
        searched["groups_verified"] += 1
    rows = [dict(r, model_id=model_id) for g in groups for r in g.rows]
    df = pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()
    searched["deployments_meeting_sla"] = df.height
    if df.height:
        df = df.with_columns(pl.col("usd_per_hour").cast(pl.Float64),
                             pl.col("cost_usd_per_million_tokens").cast(pl.Float64))
    ranked = {obj: (df.sort([obj, "num_devices"], nulls_last=True).head(top) if df.height else df)
              for obj in OBJECTIVES}
    front = (pareto_front(df.with_columns(pl.lit(True).alias("fits")), latency="tpot_ms",
                          throughput="throughput_tokens_per_s_per_device", by=[])
             if df.height else df)
    commands = {OBJECTIVES[obj]: launch_commands(model, model_id, r.row(0, named=True))
                for obj, r in ranked.items() if r.height}
    return Recommendation(df, ranked["num_devices"], ranked["usd_per_hour"], ranked["energy_j_per_token"], front,
                          commands, searched, time.perf_counter() - start)


__all__ = ["ENGINES", "Recommendation", "Target", "recommend"]
