"""An ``Architecture``: the embedding, groups of identical decoder layers, and the final norm.

A decoder layer is a tuple of (block, times) pairs, e.g. ((attention, 1), (feedforward, 1), (norm, 2)):
times is how often the block runs per layer (two pre-norms with their residual adds). A model with
different layer kinds (dense layers first, then MoE; alternating windows) has several groups
(``groups_of`` counts them). Multi-token-prediction modules (``mtp``) are held in the weights but not
run by a plain forward pass.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from mantile.costs.blocks import Block, Embedding, FinalNorm, Plan
from mantile.costs.kernels import Array
from mantile.specs.model import ModelSpec


@dataclass(frozen=True)
class LayerGroup:
    """``count`` decoder layers made of the same blocks."""

    blocks: tuple[tuple[Block, int], ...]
    count: int


@dataclass(frozen=True)
class Architecture:
    embedding: Embedding
    groups: tuple[LayerGroup, ...]
    final_norm: FinalNorm
    #: multi-token-prediction modules: weights only (DeepSeek-V3 num_nextn_predict_layers)
    mtp: tuple[tuple[Block, int], ...] = ()

    @property
    def num_layers(self) -> int:
        return sum(g.count for g in self.groups)

    def layer_blocks(self) -> Iterator[tuple[Block, float]]:
        """Every decoder block with the number of times it runs in the whole model."""
        for g in self.groups:
            for block, times in g.blocks:
                yield block, float(g.count * times)

    def layers_per_stage(self, pp: Array) -> Array:
        """Decoder layers on the busiest pipeline stage: ceil(L / pp)."""
        return np.ceil(self.num_layers / pp)

    def stage_sum(self, pp: Array, per_layer: Array) -> Array:
        """A per-model sum of decoder-layer quantities scaled to the busiest stage's share of layers:
        sum * ceil(L/pp) / L (exact for one group; the mean layer for several)."""
        return per_layer * (self.layers_per_stage(pp) / self.num_layers)

    def kv_values(self, plan: Plan, pp: Array, context: Array, sliding_full: bool = False) -> Array:
        """KV-cache values of one sequence of ``context`` tokens on one device, over the layers of the
        busiest stage (each block bounds its own cache: windows, latents). ``sliding_full``: a sliding-window
        layer's cache counts at the sequence's full length, as the engine sizes its KV capacity
        (``Scheduler.sliding_kv_full``; its attention still reads only the window)."""
        total: Array = 0.0
        for block, times in self.layer_blocks():
            if sliding_full and getattr(block, "kind", "") == "sliding":
                block = dataclasses.replace(block, window=0)  # type: ignore[type-var]
            total = total + times * block.kv_values(plan, context)
        return self.stage_sum(pp, total)

    def mtp_params(self) -> float:
        """Parameters of the multi-token-prediction modules (their embedding and head are shared)."""
        return float(sum(times * float(np.asarray(b.params(Plan()))) for b, times in self.mtp))

    def total_params(self) -> float:
        """Every parameter of the main model (the MTP modules apart, as model cards count)."""
        layers = sum(times * float(np.asarray(b.params(Plan()))) for b, times in self.layer_blocks())
        vocab = self.embedding.tables * float(np.asarray(self.embedding.params(Plan())))
        return layers + vocab + float(np.asarray(self.final_norm.params(Plan())))

    def active_params(self) -> float:
        """Parameters one token's forward pass multiplies: every layer's active share, the final norm
        and the LM head."""
        layers = sum(times * b.active_params() for b, times in self.layer_blocks())
        return layers + self.embedding.active_params() + self.final_norm.active_params()


def attention_kinds(model: ModelSpec) -> tuple[str, ...]:
    """Per layer 'full', 'sliding' or 'chunked' (see ``ModelSpec.layer_types``)."""
    return tuple(t.removesuffix("_attention") for t in model.attention_layer_types)


def moe_layers(model: ModelSpec) -> tuple[bool, ...]:
    """Per layer, whether its MLP is routed experts: layer i >= first_k_dense_replace and
    (i + 1) % interleave_moe_layer_step == 0 (DeepSeek ``first_k_dense_replace``; Llama 4
    ``moe_layers = range(step - 1, L, step)``; Qwen MoE ``decoder_sparse_step``)."""
    step, first = model.interleave_moe_layer_step, model.first_k_dense_replace
    return tuple(model.is_moe and i >= first and (i + 1) % step == 0 for i in range(model.num_hidden_layers))


def groups_of(model: ModelSpec, layer: Callable[[str, bool], tuple[tuple[Block, int], ...]]
              ) -> tuple[LayerGroup, ...]:
    """Count the model's layers by (attention kind, MoE or dense) and build one group per kind with
    ``layer(kind, moe)``, in order of first appearance."""
    counts = Counter(zip(attention_kinds(model), moe_layers(model), strict=True))
    return tuple(LayerGroup(layer(kind, moe), count) for (kind, moe), count in counts.items())
