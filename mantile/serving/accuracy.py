"""Each point's error band (``specs/bands.py``): the model's TTFT, TPOT and throughput times the
residual percentiles of its regime, held inside the physics floors (``serving/ideal.py``).

One lookup per distinct dtype of an evaluation (engine, generation, dense/MoE and the load key are
the evaluation's), then whole-column arithmetic: no per-point Python.
"""

from __future__ import annotations

import numpy as np

from mantile.costs.axes import Axes, Coded, lookup
from mantile.specs import bands
from mantile.specs.dtypes import DTYPES
from mantile.specs.hardware import HardwareSpec
from mantile.specs.model import ModelSpec
from mantile.specs.serving import ServingProfile


def band_columns(model: ModelSpec, hw: HardwareSpec, serving: ServingProfile, ax: Axes, ttft_ms: np.ndarray,
                 tpot_ms: np.ndarray, throughput: np.ndarray, floors: dict[str, np.ndarray]
                 ) -> dict[str, np.ndarray]:
    """``ttft_p10_ms ttft_p90_ms tpot_p10_ms tpot_p90_ms throughput_p10_tokens_per_s
    throughput_p90_tokens_per_s band_residuals band_basis`` (see ``specs/bands.py``)."""
    formats = (ax.dtype,) if isinstance(ax.dtype, str) else DTYPES  # one point: its own format only
    found = {d: bands.find(serving.name, hw.device.generation, d, model.is_moe, ax.load) for d in formats}
    low = lookup(ax.dtype, {d: b.p10_ratio for d, b in found.items()})
    high = lookup(ax.dtype, {d: b.p90_ratio for d, b in found.items()})
    count = lookup(ax.dtype, {d: float(b.residuals) for d, b in found.items()})
    ttft_floor, tpot_floor = floors["ttft_floor_ms"], floors["tpot_floor_ms"]
    ceiling = floors["throughput_ceiling_tokens_per_s"]
    return {
        "ttft_p10_ms": np.maximum(ttft_ms * low, ttft_floor), "ttft_p90_ms": np.maximum(ttft_ms * high, ttft_floor),
        "tpot_p10_ms": np.maximum(tpot_ms * low, tpot_floor), "tpot_p90_ms": np.maximum(tpot_ms * high, tpot_floor),
        "throughput_p10_tokens_per_s": np.minimum(throughput / high, ceiling),
        "throughput_p90_tokens_per_s": np.minimum(throughput / low, ceiling),
        "band_residuals": np.broadcast_to(count, ax.shape).astype(np.int64),
        "band_basis": _basis(ax, found, ax.shape),
    }


def _basis(ax: Axes, found: dict[str, bands.Band], shape: tuple[int, ...]) -> np.ndarray:
    """The band's basis text per point (one string per distinct dtype, gathered)."""
    if isinstance(ax.dtype, str):  # one point (estimate's scalar path) or one dtype
        return np.full(shape, found[ax.dtype].basis, dtype=object)
    if isinstance(ax.dtype, Coded):
        texts = np.asarray([found[c].basis for c in ax.dtype.choices], dtype=object)
        return np.broadcast_to(texts[ax.dtype.codes], shape)
    values = np.broadcast_to(np.asarray(ax.dtype, dtype=str), shape)
    uniq, inv = np.unique(values, return_inverse=True)
    return np.asarray(np.asarray([found[str(u)].basis for u in uniq], dtype=object)[inv]).reshape(shape)
