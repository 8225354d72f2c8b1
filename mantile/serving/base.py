"""What a serving mode gets and gives: per-step costs in, TTFT / TPOT / throughput / running batch out.

A serving mode (``static``, ``continuous``; later an engine scheduler, speculative decoding,
disaggregated prefill and decode) is a function ``timings(steps) -> Timings``. ``Steps`` runs forward
passes of the model on one replica (``costs.step.forward``) and knows the pipeline: with pp > 1 a
batch is split into m = min(pp, batch) micro-batches, and activations hop between stages (p2p).
A decode step takes the number of new (query) tokens per sequence as an input (``q_len``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mantile.costs import comm
from mantile.costs.kernels import Array
from mantile.costs.step import Setup, StepCost, forward
from mantile.serving.speculative import Speculation, draft_step_s


class Steps:
    """Forward passes of one replica of one evaluation (see module docstring)."""

    def __init__(self, setup: Setup, draft: Setup | None = None) -> None:
        ax = setup.axes
        self.setup, self.axes, self.draft = setup, ax, draft
        #: speculative decoding (``serving.speculative``): verify-pass query tokens and tokens per step
        self.spec = Speculation.of(setup)
        hit = np.asarray(ax.prefix_cache_hit_rate, dtype=float)
        #: prompt tokens a prefill computes: the misses of the prefix cache, at least the last one (its
        #: logits give the first token, so engines recompute it even on a full hit: vLLM, SGLang)
        self.prompt_tokens = np.maximum(ax.input_seq * (1.0 - hit), 1.0) if np.any(hit > 0) else ax.input_seq
        #: the fixed batch of static and plain continuous batching: batch_size, or the clients of a closed loop
        self.batch = ax.concurrency if ax.load == "concurrency" else ax.batch_size
        self.micro_batches = np.where(ax.pp > 1, np.minimum(ax.pp, self.batch), 1.0)
        replica_tp = ax.placement.devices if setup.wide_ep else ax.tp
        self._cross = replica_tp * ax.cp * ax.pp > setup.net.domain_size  # pipeline hops leave the domain
        self._hidden_bytes = setup.model.hidden_size * setup.activation_bytes_per_element

    def prefill(self, batch: Array, seq: Array) -> StepCost:
        """Prefill ``batch`` prompts of ``seq`` tokens (causal self-attention). With a prefix-cache hit
        rate h only the misses are computed: max(seq (1 - h), 1) new tokens per prompt, each attending to
        the cached prefix too (its KV is read, not recomputed)."""
        if self.prompt_tokens is self.axes.input_seq:
            return forward(self.setup, "prefill", batch, seq, seq)
        new = np.maximum(seq * (1.0 - np.asarray(self.axes.prefix_cache_hit_rate, dtype=float)), 1.0)
        return forward(self.setup, "prefill", batch, new, seq)

    def decode(self, batch: Array, q_len: Array, kv_len: Array, mixed_seqs: Array = 0.0,
               mixed_len: Array = 0.0, mixed_kv: Array = 0.0) -> StepCost:
        """Decode ``q_len`` new tokens for each of ``batch`` sequences over ``kv_len`` cached keys, with
        ``mixed_seqs`` prompts of ``mixed_len`` new tokens (over ``mixed_kv`` keys with a prefix-cache hit)
        prefilled in the same pass."""
        return forward(self.setup, "decode", batch, q_len, kv_len, mixed_seqs, mixed_len, mixed_kv)

    def mixed_kv(self) -> Array:
        """Keys a riding prompt's new tokens attend to: 0 (= their own count) without a prefix-cache hit,
        else the whole prompt."""
        return 0.0 if self.prompt_tokens is self.axes.input_seq else self.axes.input_seq

    def draft_s(self, batch: Array, kv_len: Array) -> Array:
        """Seconds of one step's drafting (0 without speculative decoding; ``serving.speculative``)."""
        if not self.spec.active:
            return 0.0
        return draft_step_s(self.setup, self.draft, batch, kv_len)

    def decode_steps(self, output_seq: Array) -> Array:
        """Steps that produce output_seq tokens after the first: (output_seq - 1) / tokens_per_step, + 1
        (the queueing model's output length in steps)."""
        return (np.maximum(output_seq, 1.0) - 1.0) / self.spec.tokens_per_step + 1.0

    def pipeline_hop_s(self, tokens: Array) -> Array:
        """One stage-to-stage transfer of ``tokens`` hidden states (0 work when pp = 1)."""
        return comm.p2p(self.setup.net, tokens * self._hidden_bytes, self._cross)


@dataclass(frozen=True)
class Timings:
    """A serving mode's answer, per point (seconds; throughputs in tokens/s of the whole deployment)."""

    ttft_s: Array
    tpot_s: Array
    e2e_s: Array
    throughput_tokens_per_s: Array
    decode_throughput_tokens_per_s: Array
    running_batch: Array
    prefill: StepCost
    decode: StepCost
    ttft_p50_s: Array | None = None  # None: the mean (every request sees the same time)
    ttft_p99_s: Array | None = None
    tpot_p50_s: Array | None = None
    tpot_p99_s: Array | None = None
    sustainable: Array = True  # False where requests arrive faster than the deployment serves them


def mean_context(ax_input: Array, ax_output: Array) -> Array:
    """Mean cache length over the decode phase: input + output/2 (time is linear in the cache length)."""
    return ax_input + np.maximum(ax_output, 2) / 2.0
