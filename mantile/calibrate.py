"""Calibration: fit a generation's efficiency constants to measured rows (least squares on log error).

Used by ``benchmarks/fit_efficiency.py`` (the script that writes ``conf/efficiency/*.yaml``) and by the
out-of-sample accuracy test. Predictions go through ``mantile.validate.predict_row``, i.e. the public
API and the README's mapping. Needs scipy (``pip install 'mantile[fit]'``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from mantile.specs import EfficiencyProfile
from mantile.validate import hardware_for, predict_row

#: name -> (lower, upper) bound. Everything else in the profile is fixed.
FITTED = {
    "gemm_efficiency": (0.3, 1.0),
    "gemm_k_half": (0.0, 4000.0),
    "memory_efficiency": (0.5, 1.0),
    "kernel_overhead_us": (0.2, 8.0),
    "gemm_overhead_us": (0.0, 10.0),
    "attention_efficiency": (0.1, 1.0),
    "attention_head_dim_half": (0.0, 400.0),
}


def residuals(x: np.ndarray, base: EfficiencyProfile, rows: list[dict[str, Any]], weights: np.ndarray) -> np.ndarray:
    """Weighted log(predicted / measured) of every row under the constants ``x``."""
    eff = dataclasses.replace(base, **dict(zip(FITTED, x, strict=True)))
    out = []
    for row in rows:
        p = predict_row(row, hardware_for(row, None), eff)
        assert p is not None, row  # the fit's rows are all predictable kinds
        out.append(math.log(p.predicted / p.measured))
    return np.asarray(out) * weights


def fit_rows(base: EfficiencyProfile, rows: list[dict[str, Any]]) -> tuple[EfficiencyProfile, Any]:
    """Least-squares fit of FITTED on ``rows``; returns (profile, scipy result)."""
    kinds = [r["kind"] for r in rows]
    counts = {k: kinds.count(k) for k in set(kinds)}
    weights = np.array([1.0 / math.sqrt(counts[k]) for k in kinds])
    x0 = np.array([getattr(base, k) for k in FITTED])
    lo, hi = np.array([b[0] for b in FITTED.values()]), np.array([b[1] for b in FITTED.values()])
    from scipy.optimize import least_squares

    fit = least_squares(residuals, np.clip(x0, lo, hi), bounds=(lo, hi), args=(base, rows, weights),
                        x_scale=np.maximum(np.abs(x0), 1e-3), diff_step=1e-3)
    return dataclasses.replace(base, **dict(zip(FITTED, fit.x, strict=True))), fit
