"""The sweep grid: the cross product of the axes, produced chunk by chunk from flat point indices.

Nothing is materialized for the whole grid: chunk [start, stop) is decoded from its flat point
indices (row-major, like ``numpy.unravel_index``), so a 20-million-point sweep costs the memory of
one chunk. Axis values are decoded once per chunk as positions (``GridIndex``); the cost model gets
float columns of small blocks (``block_columns``) and the results table gets integer columns of the
whole chunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from mantile.costs.axes import Coded
from mantile.engine.spec import STR_AXES


def shape(axes: dict[str, list[Any]]) -> tuple[int, ...]:
    return tuple(len(v) for v in axes.values())


@dataclass(frozen=True)
class GridIndex:
    """Points start..stop-1 of the grid as positions into each axis's value list.

    ``positions[key]`` is None for a one-value axis (every point has that value)."""

    axes: dict[str, list[Any]]
    start: int
    stop: int
    positions: dict[str, np.ndarray | None]

    @classmethod
    def of(cls, axes: dict[str, list[Any]], start: int, stop: int) -> GridIndex:
        pos: dict[str, np.ndarray | None] = {}
        stride = 1
        for key, values in reversed(axes.items()):
            pos[key] = _positions(len(values), stride, start, stop) if len(values) > 1 else None
            stride *= len(values)
        return cls(axes, start, stop, {k: pos[k] for k in axes})

    @property
    def n_points(self) -> int:
        return self.stop - self.start

    def column(self, key: str, dtype: type = float, lo: int = 0, hi: int | None = None) -> Any:
        """Axis ``key`` for points lo..hi-1 of this chunk: a ``dtype`` array, or ``Coded`` for strings."""
        hi = self.n_points if hi is None else hi
        values, pos = self.axes[key], self.positions[key]
        if key in STR_AXES:
            codes = np.zeros(hi - lo, dtype=np.int32) if pos is None else pos[lo:hi]
            return Coded(tuple(values), codes)
        if pos is None:
            return np.full(hi - lo, values[0], dtype=dtype)
        return np.asarray(values, dtype=dtype)[pos[lo:hi]]


def _positions(n_values: int, stride: int, start: int, stop: int) -> np.ndarray:
    """Position in an axis of ``n_values`` values (row-major, ``stride`` points per value) of every
    flat point index start..stop-1: runs of ``stride`` equal positions, built with ``np.repeat``
    (4x faster than ``np.unravel_index`` over the whole chunk)."""
    first, last = start // stride, (stop - 1) // stride
    runs = np.arange(first, last + 1, dtype=np.int64)
    lengths = np.full(len(runs), stride, dtype=np.int64)
    lengths[0] = min((first + 1) * stride, stop) - start
    if len(runs) > 1:
        lengths[-1] = stop - last * stride
    return np.repeat((runs % n_values).astype(np.int32), lengths)


def block_columns(index: GridIndex, lo: int, hi: int) -> dict[str, Any]:
    """Cost-model input for points lo..hi-1 of a chunk: numbers as floats, strings as ``Coded``;
    embedding_tp defaults to tp (kv_dtype, when absent, follows the serving profile's recipe)."""
    cols = {key: index.column(key, float, lo, hi) for key in index.axes}
    cols.setdefault("embedding_tp", cols["tp"])
    return cols


def chunks(n_points: int, chunk_size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n_points, chunk_size):
        yield start, min(start + chunk_size, n_points)


@dataclass(frozen=True)
class Box:
    """Points lo..hi-1 of a chunk (relative to its start) that form a sub-grid: axis ``key`` takes the
    values at positions ``ranges[key]`` = (first, last + 1). Row-major order inside the box is the
    grid's order, so the box's results, raveled, are rows lo..hi-1."""

    lo: int
    hi: int
    ranges: dict[str, tuple[int, int]]

    @property
    def n_points(self) -> int:
        return self.hi - self.lo


def boxes(axes: dict[str, list[Any]], start: int, stop: int, max_points: int) -> Iterator[Box]:
    """Grid points start..stop-1 as consecutive sub-grids of at most ``max_points`` points each.

    A range of row-major points is a few boxes (at most two per axis): the tail of the first level
    of an axis, whole levels, the head of the last one. A box above ``max_points`` is cut along its
    outermost axis that has more than one value."""
    sizes = [len(v) for v in axes.values()]
    out: list[list[tuple[int, int]]] = []
    _split(sizes, 0, start, stop, [], out)
    lo = 0
    for ranges in out:
        for piece in _cap(ranges, max_points):
            n = int(np.prod([b - a for a, b in piece]))
            yield Box(lo, lo + n, dict(zip(axes, piece, strict=True)))
            lo += n


def _split(sizes: list[int], axis: int, start: int, stop: int, prefix: list[tuple[int, int]],
           out: list[list[tuple[int, int]]]) -> None:
    """Boxes of offsets start..stop-1 inside the sub-grid of axes ``axis``... under the fixed ``prefix``."""
    if start >= stop:
        return
    inner = int(np.prod(sizes[axis + 1:]))
    full = [(0, n) for n in sizes[axis + 1:]]
    first, head = divmod(start, inner)
    last, tail = divmod(stop, inner)
    if first == last:  # inside one level of this axis
        _split(sizes, axis + 1, head, tail, [*prefix, (first, first + 1)], out)
        return
    if head:  # the tail of the first level
        _split(sizes, axis + 1, head, inner, [*prefix, (first, first + 1)], out)
        first += 1
    if first < last:  # whole levels
        out.append([*prefix, (first, last), *full])
    if tail:  # the head of the last level
        _split(sizes, axis + 1, 0, tail, [*prefix, (last, last + 1)], out)


def _cap(ranges: list[tuple[int, int]], max_points: int) -> Iterator[list[tuple[int, int]]]:
    """``ranges`` cut along its outermost axis of several values into pieces of at most ``max_points``
    points (down the axes when one level alone is too big)."""
    lengths = [b - a for a, b in ranges]
    if int(np.prod(lengths)) <= max_points:
        yield ranges
        return
    axis = next(i for i, n in enumerate(lengths) if n > 1)
    per_level = int(np.prod(lengths[axis + 1:]))
    step = max(max_points // per_level, 1)
    a, b = ranges[axis]
    for first in range(a, b, step):
        yield from _cap([*ranges[:axis], (first, min(first + step, b)), *ranges[axis + 1:]], max_points)


def box_columns(axes: dict[str, list[Any]], box: Box) -> dict[str, Any]:
    """Cost-model input for a box, as broadcastable columns: one array dimension per axis that varies
    in the box (in grid order), every column of length 1 in the others. Each term of the cost model is
    then computed once per level of the axes it depends on (a plan-only term once per plan) and
    broadcast; ``np.broadcast_to(v, box shape).ravel()`` gives the rows in grid order."""
    varying = [k for k, (a, b) in box.ranges.items() if b - a > 1] or [next(iter(axes))]
    cols: dict[str, Any] = {}
    for key, (a, b) in box.ranges.items():
        shape = [b - a if k == key else 1 for k in varying]
        if key in STR_AXES:
            cols[key] = Coded(tuple(axes[key]), np.arange(a, b, dtype=np.int32).reshape(shape))
        else:
            cols[key] = np.asarray(axes[key][a:b], dtype=float).reshape(shape)
    cols.setdefault("embedding_tp", cols["tp"])
    return cols
