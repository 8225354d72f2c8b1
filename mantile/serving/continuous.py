"""Continuous (in-flight) batching with chunked prefill, as vLLM / TensorRT-LLM / SGLang run it, in
steady state: ``batch`` sequences are always running; each finishes after output_seq tokens and is
replaced, so every iteration also prefills batch / output_seq new prompts of input_seq tokens in the
same kernels.

- TPOT = one such mixed iteration (+ (pp-1) pipeline hops with pp > 1);
- TTFT = a prompt's own prefill (alone) + one iteration to join the batch (no queueing behind other
  prompts: that needs the engine scheduler of a serving profile);
- throughput = dp * batch / TPOT.
"""

from __future__ import annotations

from mantile.serving.base import Steps, Timings, mean_context


def timings(steps: Steps, q_len: float = 1.0) -> Timings:
    ax, mb = steps.axes, steps.micro_batches
    B, S, O, pp, dp = steps.batch, ax.input_seq, ax.output_seq, ax.pp, ax.dp  # noqa: E741
    mixed = B / mb / O  # prompts joining per iteration, per micro-batch
    dec = steps.decode(B / mb, q_len, mean_context(S, O), mixed_seqs=mixed, mixed_len=S)
    tpot = dec.latency_s + (pp - 1) * steps.pipeline_hop_s((B + mixed * S) / mb)
    alone = steps.prefill(1.0, S)
    ttft = alone.latency_s + (pp - 1) * steps.pipeline_hop_s(S / ax.cp) + tpot
    e2e = ttft + (O - 1) * tpot
    # the breakdown's prefill columns describe the batch's own prefill, as in static batching
    pre = steps.prefill(B / mb, S)
    return Timings(ttft, tpot, e2e, dp * B / tpot, dp * B / tpot, B, pre, dec)
