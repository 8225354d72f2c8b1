"""An engine's scheduler (vLLM, SGLang, TensorRT-LLM): continuous batching under the serving profile's
caps, with the load as benchmarks define it, and queueing in closed form (``queueing.py``).

The step time is the cost model's mixed forward pass: ``d`` sequences decode one token each (at the
mean cache length input + output/2) while ``p`` prefill tokens of waiting prompts ride along
(``p / S`` prompts of S tokens: the chunk's attention sees, on average, half the prompt), plus the
profile's host time per step (``Scheduler.wall_s``: ``host_step_us`` plus ``host_per_sequence_us * d``, the
latter hidden behind the GPU step by an overlap scheduler unless it is the longer) and, with pp > 1, the
stage-to-stage hops. The running cap is the profile's ``max_num_seqs``, the sequences whose KV cache
fits (``kv_capacity_seqs``, from the memory model) and the step's token budget, or a cap the engine's
launcher computes (trtllm-bench: ``trtllm_bench_max_batch``); TensorRT-LLM's caps bind each attention-DP
rank (``Scheduler.caps_per_attention_rank``), so a replica's are the rank's x its ranks. Loads are per
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

from mantile.costs.axes import Axes, lookup
from mantile.costs.families import parameters
from mantile.costs.kernels import Array
from mantile.costs.step import StepCost
from mantile.serving import queueing
from mantile.serving.base import Steps, Timings, mean_context
from mantile.specs.model import ModelSpec
from mantile.specs.serving import Scheduler

#: trtllm-bench's BYTES_PER_ELEM by the checkpoint's quantization (NVFP4; FP8 and FP8 block scales; else 2)
TRTLLM_BENCH_BYTES = {"fp4": 0.5, "fp8": 1.0}
#: safetensors elements a quantized linear weight stores per parameter, which trtllm-bench counts as its
#: parameters: NVFP4 packs two values a byte (uint8) with one FP8 scale per 16 values; FP8 one a value
STORED_ELEMENTS = {"fp4": 0.5 + 1.0 / 16}


def trtllm_bench_max_batch(model: ModelSpec, memory_gib: float, ax: Axes) -> np.ndarray:
    """The max_batch_size trtllm-bench builds its engine with when none is given (TensorRT-LLM
    tensorrt_llm/bench/build/tuning.py, calc_engine_setting and finetune_setting), per point:

        engine = parameters x bytes per element of the checkpoint's format (its safetensors elements:
                 packed NVFP4 counts half a value plus its scales; embedding and LM head 16-bit), GiB
        kv per token = 2 x layers x max(tp, kv heads) x head_dim x KV bytes (1 for FP8, else 2), GiB
        requests = 0.95 (memory x tp x pp - engine) / (kv per token x (input + output))
        raw = min(requests, 4096) / pp; rounded up: to 32 (at least 64) below 256, to 128 below 1024, else 256

    Its KV estimate is the GQA cache of ``num_key_value_heads`` heads of ``head_dim``: for an MLA model
    (DeepSeek: 128 KV heads of hidden / heads = 56 in its config) it is about 25x the latent cache the
    runtime allocates, so this cap, not the KV capacity, binds trtllm-bench's DeepSeek runs.

    The same function sets max_num_tokens = min(raw x (1 + input / output), 32768), rounded up (to 256, at
    least 2048, below 4096; to 512 below 8192; else 1024): 3,584 a step for Llama 3.3 70B FP8 at TP8, 1k/1k.
    Mantile does not apply it: with it the finite all-at-once run model puts the dense Llama rows of the
    published table 20-25% too fast, where they are within 4% without it (prompt chunks riding in
    memory-bound decode steps come out cheaper than trtllm-bench runs them); until that is understood the
    step budget stays the profile's (none)."""
    dtype = ax.feedforward_dtype
    bpe = np.nan_to_num(lookup(dtype, TRTLLM_BENCH_BYTES), nan=2.0)
    stored = np.nan_to_num(lookup(dtype, STORED_ELEMENTS), nan=1.0)
    kv_b = np.nan_to_num(lookup(ax.kv_dtype, {"fp8": 1.0}), nan=2.0)
    count = parameters(model)
    embed = model.embedding_params  # embedding and LM head, 16-bit in FP8 / NVFP4 checkpoints
    engine = ((count.total + count.mtp - embed) * stored + embed) * bpe / 2**30
    tp, pp = np.asarray(ax.tp, dtype=float), np.asarray(ax.pp, dtype=float)
    heads = np.maximum(tp, model.num_key_value_heads)  # "each GPU in TP group has at least 1 kv head"
    per_token = 2.0 * model.num_hidden_layers * heads * model.head_dim * kv_b / 2**30
    requests = 0.95 * (memory_gib * tp * pp - engine) / (per_token * (ax.input_seq + ax.output_seq))
    raw = np.minimum(requests, 4096.0) / pp
    return np.where(raw < 256, np.maximum(64.0, 32.0 * np.ceil(raw / 32)),
                    np.where(raw < 1024, 128.0 * np.ceil(raw / 128), 256.0 * np.ceil(raw / 256)))


def timings(steps: Steps, scheduler: Scheduler, kv_capacity_seqs: Array, seq_cap: Array | None = None,
            graph_batch: Array = 0.0) -> Timings:
    """The scheduler's timings; ``seq_cap``: the running-sequence cap the engine's launcher sets per point
    (``Scheduler.max_num_seqs_rule``), beside the profile's ``max_num_seqs``; ``graph_batch``: the largest
    decode batch (per attention-DP rank) the engine runs in a CUDA graph (0: every one).

    A step that runs outside CUDA graphs (one carrying prompt tokens where ``prefill_outside_graphs``, or
    decoding more sequences a rank than ``graph_batch``) takes at least its kernel launches x
    ``eager_launch_us`` (``Scheduler.eager_wall_s``). A step that prefills beside decoding counts as one such
    pass (SGLang runs the prompts' pass eagerly beside a graphed decode pass; the two are not split here)."""
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
        seqs = per_rank(np.asarray(d))
        wall = scheduler.wall_s(c.latency_s + steps.draft_s(d, context) + hops, seqs)
        return scheduler.eager_wall_s(wall, c.total.launches, p, seqs, graph_batch)

    budget: Array = float(scheduler.max_num_batched_tokens)
    out_steps = steps.decode_steps(O)
    max_seqs: Array = float(scheduler.max_num_seqs)
    if seq_cap is not None:
        max_seqs = np.minimum(max_seqs or np.inf, seq_cap)
    # each executor has its own caps (TensorRT-LLM), or each DP rank's scheduler its own request pool (SGLang)
    max_seqs = np.asarray(max_seqs) * scheduler.seq_executors(ax.placement.attention_dp)
    budget = np.asarray(budget) * scheduler.executors(ax.placement.attention_dp)
    if scheduler.spec_max_num_seqs and spec.active:  # the engine's own cap while a proposer model drafts
        drafted = ax.is_method("draft") | ax.is_method("eagle") | ax.is_method("mtp")
        spec_cap = float(scheduler.spec_max_num_seqs)
        max_seqs = np.where(drafted, min(spec_cap, float(scheduler.max_num_seqs or spec_cap)), max_seqs)
    cap = queueing.running_cap(np.asarray(max_seqs), kv_capacity_seqs, budget, S_new, out_steps, spec.q_len)
    load = {"batch_size": {"batch": ax.batch_size}, "concurrency": {"concurrency": ax.concurrency / dp},
            "request_rate": {"request_rate": ax.request_rate / dp}}[ax.load]
    # a benchmark run's requests split over the replicas like its load (0: the steady state)
    requests = np.asarray(ax.num_requests, dtype=float) / dp
    q = queueing.timings(step, S_new, out_steps, cap, budget, q=spec.q_len, requests=requests,
                         varied=ax.varied_outputs, uniform=ax.uniform_outputs, **load)
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
