"""Model families: each module turns a ``ModelSpec`` into an ``Architecture`` (a sequence of layer blocks).

Adding a family (hybrid linear attention next) is one module here that builds its blocks, and one
entry in ``FAMILIES``. ``ModelSpec.family`` names the entry (by default ``deepseek`` for multi-head
latent attention, ``moe`` with more than one expert, else ``dense``); ``specs.hf`` picks it from a
HuggingFace config's architectures / model_type.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from mantile.costs.families import deepseek, dense, moe
from mantile.costs.families.base import Architecture, LayerGroup
from mantile.specs.errors import SpecError
from mantile.specs.model import ModelSpec

FAMILIES: dict[str, Callable[[ModelSpec], Architecture]] = {
    "dense": dense.build,
    "moe": moe.build,
    "deepseek": deepseek.build,
}


@functools.cache
def architecture(model: ModelSpec) -> Architecture:
    """The blocks of ``model``, built by its family's module (cached: specs are frozen)."""
    if model.family not in FAMILIES:
        raise SpecError("model", "family", model.family, sorted(FAMILIES))
    return FAMILIES[model.family](model)


@dataclass(frozen=True)
class ParameterCount:
    """Parameters of a model: ``total`` (the main model, as model cards count it), ``active`` (one
    token's forward pass: top-k and shared experts, the LM head, not the embedding lookup) and
    ``mtp`` (multi-token-prediction modules, held in the weights on top of ``total``)."""

    total: float
    active: float
    mtp: float


def parameters(model: ModelSpec) -> ParameterCount:
    arch = architecture(model)
    return ParameterCount(arch.total_params(), arch.active_params(), arch.mtp_params())


__all__ = ["FAMILIES", "Architecture", "LayerGroup", "ParameterCount", "architecture", "parameters"]
