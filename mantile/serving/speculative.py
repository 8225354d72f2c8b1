"""Speculative decoding: what a verify step costs beyond the target's own pass, and what it yields.

Each decode step of a speculating sequence (vLLM, SGLang and TensorRT-LLM all run it this way):
1. the proposer drafts k tokens (``spec_num_tokens``);
2. the target runs one decode pass over k + 1 query tokens per sequence (the last accepted token and
   the k drafts; ``Steps.decode`` with q_len = k + 1: its GEMMs see k + 1 rows per sequence, attention
   reads the cache once for all of them, the LM head produces k + 1 logit rows);
3. it keeps the accepted prefix of the drafts plus one token of its own: ``tokens_per_step`` on average
   (``specs.speculative.tokens_per_step``), so TPOT = (verify pass + drafting) / tokens_per_step.

Drafting cost per step (k proposer passes of one token per sequence over the mean cache length):
- ``draft``: the draft model's whole decode pass (a catalog model, ``ServingProfile.draft_model``), on
  the target's tensor-parallel group (vLLM's default draft_tensor_parallel_size), k times;
- ``eagle``: an EAGLE head, one decoder layer of the target's shape (its attention and a dense MLP of the
  model's dense width), the fc input projection (2h -> h) and the target's LM head, k times
  (EAGLE, arXiv:2401.15077 section 3; EAGLE-3's own smaller vocabulary is not modelled);
- ``mtp``: one of the model's multi-token-prediction modules (DeepSeek-V3 section 2.2: a decoder layer,
  two norms, eh_proj) and the shared LM head, k times (the module reused autoregressively, as
  TensorRT-LLM's and SGLang's MTP do for k above num_nextn_predict_layers);
- ``ngram``: prompt lookup on the host, no device work (vLLM runs it on the CPU).
The first proposer pass of a step also takes the tokens accepted last step; it is counted as one token
(a memory-bound pass costs about the same for a few rows).

Memory: the drafter's weights (draft model, EAGLE layer; MTP modules are already held with the model),
and its KV cache per running sequence (the draft model's layers, the EAGLE or MTP layer), over the same
held tokens as the target's cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mantile.costs import memory
from mantile.costs.blocks import Block, MTPHead, Plan
from mantile.costs.families import architecture
from mantile.costs.families.dense import dense_mlp
from mantile.costs.kernels import Array, Cost
from mantile.costs.step import Setup, block_cost, exposed_s, forward
from mantile.specs import speculative
from mantile.specs.model import ModelSpec


def draft_layer(model: ModelSpec, method: str) -> tuple[tuple[Block, float], ...]:
    """The blocks of one proposer pass (its LM head apart) of ``eagle`` or ``mtp`` with their counts."""
    arch = architecture(model)
    if method == "mtp":
        n = max(model.num_nextn_predict_layers, 1)
        return tuple((block, times / n) for block, times in arch.mtp)
    layer = arch.groups[0].blocks  # one decoder layer of the first kind: (block, times per layer)
    attention = next(b for b, _ in layer if b.layer_type == "attention")
    norm, norms = next((b, float(t)) for b, t in layer if b.layer_type == "norm")
    return ((attention, 1.0), (dense_mlp(model), 1.0), (norm, norms), (MTPHead(model.hidden_size), 1.0))


@dataclass(frozen=True)
class Speculation:
    """Per point: query tokens of a verify pass per sequence (k + 1; 1 without speculation), the mean
    tokens a step yields, and whether any point speculates (else every method term is skipped)."""

    q_len: np.ndarray
    tokens_per_step: np.ndarray
    active: bool

    @classmethod
    def of(cls, setup: Setup) -> Speculation:
        ax = setup.axes
        if not ax.speculates:  # plain decoding everywhere: one token in, one out
            return cls(np.asarray(1.0), np.asarray(1.0), False)
        none = ax.is_method("none")
        k = np.where(none, 0.0, np.broadcast_to(np.asarray(ax.spec_num_tokens, dtype=float), ax.shape))
        rate = np.zeros(ax.shape)
        for method, d in speculative.defaults().items():
            rate = np.where(ax.is_method(method), d.acceptance_rate, rate)
        acceptance = np.where(none, 0.0, np.broadcast_to(np.asarray(ax.spec_acceptance, dtype=float), ax.shape))
        tokens = np.where(none, 1.0, speculative.tokens_per_step(acceptance, k, rate))
        return cls(k + 1.0, tokens, bool(np.any(~none)))


def draft_parts(setup: Setup, draft: Setup | None, method: str, batch: Array, kv_len: Array
                ) -> tuple[tuple[Block, float, Cost], ...]:
    """One proposer pass of ``method`` for ``batch`` sequences over ``kv_len`` keys: every block with how
    often it runs in the pass and its Cost (named kernels); empty for ngram, none, or a method the model
    cannot run (MTP without modules, draft without a draft model)."""
    if method in ("eagle", "mtp") and (method == "eagle" or setup.model.num_nextn_predict_layers):
        blocks = (*draft_layer(setup.model, method), (setup.arch.embedding, 1.0))
        return tuple((b, t, block_cost(setup, b, "decode", batch, 1.0, kv_len, logits_rows=batch)) for b, t in blocks)
    if method == "draft" and draft is not None:
        return forward(draft, "decode", batch, 1.0, kv_len).parts
    return ()


def draft_step_s(setup: Setup, draft: Setup | None, batch: Array, kv_len: Array) -> Array:
    """Seconds of one step's drafting on one device for ``batch`` sequences: k proposer passes (see module
    docstring), each the sum of its blocks' exposed times."""
    ax = setup.axes
    k = np.asarray(ax.spec_num_tokens, dtype=float)
    total: Array = np.zeros(ax.shape)
    for method in ("eagle", "mtp", "draft"):
        mask = ax.is_method(method)
        if not np.any(mask):
            continue
        overlap = (draft if method == "draft" and draft is not None else setup).comm_overlap
        one: Array = 0.0
        for _, times, c in draft_parts(setup, draft, method, batch, kv_len):
            one = one + times * np.asarray(exposed_s(c, overlap))
        total = np.where(mask, k * one, total)
    return total


def draft_weight_bytes(setup: Setup, draft: Setup | None) -> Array:
    """Weight bytes of the drafter on one device: the draft model (whole, split over tp) or the EAGLE
    layer (attention and MLP over tp, the fc whole); MTP modules are counted with the model's weights
    where spec_method is mtp (``memory.weight_bytes``'s ``mtp_loaded``)."""
    ax, per = setup.axes, setup.weight_bytes_per_element
    plan = Plan(tp=ax.tp, ep=1, tp_emb=ax.embedding_tp)
    total: Array = np.zeros(ax.shape)
    if np.any(ax.is_method("eagle")):
        eagle: Array = 0.0
        for block, times in draft_layer(setup.model, "eagle"):
            kind = block.layer_type if block.layer_type in ("attention", "feedforward") else "norm"
            eagle = eagle + times * block.params(plan) * per[kind]
        total = np.where(ax.is_method("eagle"), eagle, total)
    if draft is not None and np.any(ax.is_method("draft")):
        dp = draft.weight_bytes_per_element
        w = memory.weight_bytes(draft.model, ax.tp, 1.0, ax.embedding_tp, 1.0, dp["embedding"], dp["attention"],
                                dp["feedforward"])
        total = np.where(ax.is_method("draft"), w, total)
    return total


def draft_kv_values(setup: Setup, draft: Setup | None, tp: Array, held: Array) -> Array:
    """KV values one running sequence's drafter keeps on one device for ``held`` tokens (attention split
    over ``tp``): the draft model's layers, or the one EAGLE / MTP layer (MTP: every module held)."""
    ax, plan = setup.axes, Plan(tp=tp)
    total: Array = np.zeros(ax.shape)
    for method in ("eagle", "mtp"):
        if np.any(ax.is_method(method)):
            blocks = draft_layer(setup.model, method) if method == "eagle" else setup.arch.mtp
            values = sum((times * np.asarray(b.kv_values(plan, held)) for b, times in blocks), np.zeros(ax.shape))
            total = np.where(ax.is_method(method), values, total)
    if draft is not None and np.any(ax.is_method("draft")):
        total = np.where(ax.is_method("draft"), architecture(draft.model).kv_values(plan, 1.0, held), total)
    return total
