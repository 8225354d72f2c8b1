"""Model families: each module turns a ``ModelSpec`` into an ``Architecture`` (a sequence of layer blocks).

Adding a family (MLA attention, sliding windows, hybrid layers) is one module here that builds its
blocks, and one entry in ``FAMILIES``. ``ModelSpec.family`` names the entry (by default ``moe`` when
the model has more than one expert, else ``dense``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from mantile.costs.families import dense, moe
from mantile.costs.families.base import Architecture, LayerGroup
from mantile.specs.errors import SpecError
from mantile.specs.model import ModelSpec

FAMILIES: dict[str, Callable[[ModelSpec], Architecture]] = {
    "dense": dense.build,
    "moe": moe.build,
}


@functools.cache
def architecture(model: ModelSpec) -> Architecture:
    """The blocks of ``model``, built by its family's module (cached: specs are frozen)."""
    if model.family not in FAMILIES:
        raise SpecError("model", "family", model.family, sorted(FAMILIES))
    return FAMILIES[model.family](model)


__all__ = ["FAMILIES", "Architecture", "LayerGroup", "architecture"]
