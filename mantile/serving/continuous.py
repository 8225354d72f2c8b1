"""Continuous (in-flight) batching with chunked prefill, as vLLM / TensorRT-LLM / SGLang run it, in
steady state: ``batch`` sequences are always running; each finishes after output_seq tokens and is
replaced, so every iteration also prefills batch / output_seq new prompts of input_seq tokens in the
same kernels.

- TPOT = one such mixed iteration (+ (pp-1) pipeline hops with pp > 1);
- TTFT = a prompt's own prefill (alone) + one iteration to join the batch (no queueing behind other
  prompts: that needs the engine scheduler of a serving profile);
- throughput = dp * batch / TPOT.
- speculative decoding: each iteration is a verify pass of k + 1 tokens per sequence plus the drafting
  and yields tokens_per_step tokens (TPOT = iteration / tokens_per_step); sequences finish, and prompts
  join, tokens_per_step times as often;
- prefix caching: a joining prompt computes only its cache misses (``Steps.prompt_tokens``).
"""

from __future__ import annotations

from mantile.serving.base import Steps, Timings, mean_context


def timings(steps: Steps) -> Timings:
    ax, mb, spec = steps.axes, steps.micro_batches, steps.spec
    B, S, O, pp, dp = steps.batch, ax.input_seq, ax.output_seq, ax.pp, ax.dp  # noqa: E741
    S_new = steps.prompt_tokens
    mixed = B / mb / steps.decode_steps(O)  # prompts joining per iteration, per micro-batch
    dec = steps.decode(B / mb, spec.q_len, mean_context(S, O), mixed_seqs=mixed, mixed_len=S_new,
                       mixed_kv=steps.mixed_kv())
    iteration = dec.latency_s + steps.draft_s(B / mb, mean_context(S, O)) + (pp - 1) * steps.pipeline_hop_s(
        (B * spec.q_len + mixed * S_new) / mb)
    tpot = iteration / spec.tokens_per_step
    alone = steps.prefill(1.0, S)
    ttft = alone.latency_s + (pp - 1) * steps.pipeline_hop_s(S_new / ax.cp) + iteration
    e2e = ttft + (O - 1) * tpot
    # the breakdown's prefill columns describe the batch's own prefill, as in static batching
    pre = steps.prefill(B / mb, S)
    return Timings(ttft, tpot, e2e, dp * B / tpot, dp * B / tpot, B, pre, dec)
