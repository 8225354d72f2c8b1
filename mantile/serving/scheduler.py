"""An engine's scheduler (vLLM, SGLang, TensorRT-LLM): continuous batching under the serving profile's
caps, with the load as benchmarks define it, and queueing in closed form (``queueing.py``).

The step time is the cost model's mixed forward pass: ``d`` sequences decode one token each (at the
mean cache length input + output/2) while ``p`` prefill tokens of waiting prompts ride along
(``p / S`` prompts of S tokens: the chunk's attention sees, on average, half the prompt), plus the
profile's host time per step (``Scheduler.wall_s``: ``host_step_us`` plus ``host_per_sequence_us * d``, the
latter hidden behind the GPU step by an overlap scheduler unless it is the longer) and, with pp > 1, the
stage-to-stage hops. The running cap is the profile's ``max_num_seqs``, the sequences whose KV cache
fits (``kv_capacity_seqs``, from the memory model) and the step's token budget. Loads are per
replica: a deployment's ``concurrency`` clients and ``request_rate`` split evenly over dp replicas, and so
do the ``num_requests`` of a finite benchmark run (``queueing._finite_closed``, ``_finite_open``).
With pp > 1 the pass is not pipelined across micro-batches here (a conservative simplification).

Speculative decoding (``serving.speculative``): a decoding sequence takes k + 1 tokens of the step's
budget and the step adds the drafting; the queueing runs in steps (a request's output is
(output_seq - 1) / tokens_per_step + 1 steps) and TPOT is the step over tokens_per_step (p50/p99 too: the
spread of accepted tokens per step is not modelled). Prefix caching: a prompt's prefill is its cache
misses, ``Steps.prompt_tokens`` tokens attending to the whole prompt.
"""

from __future__ import annotations

import numpy as np

from mantile.costs.kernels import Array
from mantile.costs.step import StepCost
from mantile.serving import queueing
from mantile.serving.base import Steps, Timings, mean_context
from mantile.specs.serving import Scheduler


def timings(steps: Steps, scheduler: Scheduler, kv_capacity_seqs: Array) -> Timings:
    ax = steps.axes
    S, O, pp, dp = ax.input_seq, ax.output_seq, ax.pp, ax.dp  # noqa: E741
    context = mean_context(S, O)

    costs: list[StepCost] = []
    per_rank = ax.placement.group_batch  # each attention-DP rank runs its own executor loop over its sequences

    spec, S_new, mixed_kv = steps.spec, steps.prompt_tokens, steps.mixed_kv()

    def step(d: Array, p: Array) -> Array:
        c = steps.decode(d, spec.q_len, context, mixed_seqs=np.asarray(p) / S_new, mixed_len=S_new,
                         mixed_kv=mixed_kv)
        costs.append(c)
        hops = (pp - 1) * steps.pipeline_hop_s(np.asarray(d) * spec.q_len + np.asarray(p))
        return scheduler.wall_s(c.latency_s + steps.draft_s(d, context) + hops, per_rank(np.asarray(d)))

    budget = float(scheduler.max_num_batched_tokens)
    out_steps = steps.decode_steps(O)
    max_seqs: Array = float(scheduler.max_num_seqs)
    if scheduler.spec_max_num_seqs and spec.active:  # the engine's own cap while a proposer model drafts
        drafted = ax.is_method("draft") | ax.is_method("eagle") | ax.is_method("mtp")
        spec_cap = float(scheduler.spec_max_num_seqs)
        max_seqs = np.where(drafted, min(spec_cap, float(scheduler.max_num_seqs or spec_cap)), max_seqs)
    cap = queueing.running_cap(np.asarray(max_seqs), kv_capacity_seqs, budget, S_new, out_steps, spec.q_len)
    load = {"batch_size": {"batch": ax.batch_size}, "concurrency": {"concurrency": ax.concurrency / dp},
            "request_rate": {"request_rate": ax.request_rate / dp}}[ax.load]
    # a benchmark run's requests split over the replicas like its load (0: the steady state)
    requests = np.asarray(ax.num_requests, dtype=float) / dp
    q = queueing.timings(step, S_new, out_steps, cap, budget, q=spec.q_len, requests=requests, **load)
    B, per = q.running_batch, spec.tokens_per_step
    tpot = q.tpot_s / per
    e2e = q.ttft_s + (O - 1) * tpot
    if ax.load == "request_rate":  # the breakdown: one prompt's prefill and a decode step at the running batch
        prefill, decode = steps.prefill(1.0, S), steps.decode(B, spec.q_len, context)
    else:  # closed loop: the group's prefill step and the decode step that set TTFT and TPOT
        prefill, decode = costs[0], costs[-1]
    return Timings(
        ttft_s=q.ttft_s, tpot_s=tpot, e2e_s=e2e, throughput_tokens_per_s=dp * q.request_throughput_per_s * O,
        decode_throughput_tokens_per_s=dp * B / tpot, running_batch=B,
        prefill=prefill, decode=decode,
        ttft_p50_s=q.ttft_p50_s, ttft_p99_s=q.ttft_p99_s, tpot_p50_s=q.tpot_p50_s / per,
        tpot_p99_s=q.tpot_p99_s / per, sustainable=q.sustainable)
