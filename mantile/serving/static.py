"""Static batching: one batch from prefill to the last token (the plain PyTorch loop we measured).

- TTFT = prefill of batch x input_seq tokens (+ the LM head of the first token). With pp > 1 the
  batch is split into m = min(pp, batch) micro-batches: TTFT = T(b/m) (1 + (m - 1)/pp) + (pp-1) p2p.
- TPOT = one decode step at the mean cache length input_seq + output_seq/2; with pp > 1, m
  micro-batches keep the stages busy and each sequence waits one full pass: TPOT = T(b/m) + (pp-1) p2p.
- e2e = TTFT + (output_seq - 1) TPOT; throughput = dp * batch * output_seq / e2e (static batch from
  prefill to last token); decode throughput = dp * batch / TPOT.
- speculative decoding (``serving.speculative``): the decode step is a verify pass of k + 1 tokens per
  sequence plus the drafting, and yields tokens_per_step tokens: TPOT = (verify + draft + hops) / that.
"""

from __future__ import annotations

from mantile.serving.base import Steps, Timings, mean_context


def timings(steps: Steps) -> Timings:
    ax, mb, spec = steps.axes, steps.micro_batches, steps.spec
    B, S, O, pp, dp = steps.batch, ax.input_seq, ax.output_seq, ax.pp, ax.dp  # noqa: E741
    pre = steps.prefill(B / mb, S)
    ttft = pre.latency_s * (1 + (mb - 1) / pp) + (pp - 1) * steps.pipeline_hop_s(B / mb * steps.prompt_tokens / ax.cp)
    dec = steps.decode(B / mb, spec.q_len, mean_context(S, O))
    step = dec.latency_s + steps.draft_s(B / mb, mean_context(S, O)) + (pp - 1) * steps.pipeline_hop_s(
        B / mb * spec.q_len)
    tpot = step / spec.tokens_per_step
    e2e = ttft + (O - 1) * tpot
    return Timings(ttft, tpot, e2e, dp * B * O / e2e, dp * B / tpot, B, pre, dec)
