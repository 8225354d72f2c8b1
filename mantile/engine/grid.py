"""The sweep grid: the cross product of the axes, produced chunk by chunk from flat point indices.

Nothing is materialized for the whole grid: chunk [start, stop) is decoded with
``numpy.unravel_index``, so a 20-million-point sweep costs the memory of one chunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from mantile.costs.system import Coded
from mantile.engine.spec import STR_AXES


def shape(axes: dict[str, list[Any]]) -> tuple[int, ...]:
    return tuple(len(v) for v in axes.values())


def chunk_columns(axes: dict[str, list[Any]], start: int, stop: int) -> dict[str, Any]:
    """Columns of grid points start..stop-1: numbers as float arrays, strings as ``Coded``."""
    idx = np.unravel_index(np.arange(start, stop), shape(axes))
    cols: dict[str, Any] = {}
    for (key, values), i in zip(axes.items(), idx):
        if key in STR_AXES:
            cols[key] = Coded(tuple(values), i)
        elif len(values) == 1:
            cols[key] = np.full(stop - start, float(values[0]))
        else:
            cols[key] = np.asarray(values, dtype=float)[i]
    return cols


def chunks(n_points: int, chunk_size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n_points, chunk_size):
        yield start, min(start + chunk_size, n_points)
