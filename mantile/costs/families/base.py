"""An ``Architecture``: the embedding, groups of identical decoder layers, and the final norm.

A decoder layer is a tuple of (block, times) pairs, e.g. ((attention, 1), (feedforward, 1), (norm, 2)):
times is how often the block runs per layer (two pre-norms with their residual adds). A model with
different layer kinds (dense layers first, then MoE; alternating windows) has several groups.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from mantile.costs.blocks import Block, Embedding, FinalNorm, Plan
from mantile.costs.kernels import Array


@dataclass(frozen=True)
class LayerGroup:
    """``count`` consecutive decoder layers made of the same blocks."""

    blocks: tuple[tuple[Block, int], ...]
    count: int


@dataclass(frozen=True)
class Architecture:
    embedding: Embedding
    groups: tuple[LayerGroup, ...]
    final_norm: FinalNorm

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

    def kv_values_per_token(self, plan: Plan, pp: Array) -> Array:
        """KV-cache values per token on one device: over the layers of the busiest stage."""
        total: Array = 0.0
        for block, times in self.layer_blocks():
            total = total + times * block.kv_values_per_token(plan)
        return self.stage_sum(pp, total)
