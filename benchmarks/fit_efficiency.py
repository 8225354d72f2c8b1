"""Fit a generation's efficiency constants to measured timings; print the fit and its residuals.

    python benchmarks/fit_efficiency.py ../shared/calibration/h100_sxm_pytorch_bf16.jsonl \
        --generation hopper [--write]

Predictions go through the same public API and mapping as ``python -m mantile.validate`` (every
layer and whole-model row). The loss is the mean squared log error, each row kind (layer_prefill,
layer_decode, model_prefill, model_decode) weighted equally, so no kind dominates by row count.
Only the fitted constants below move; datasheet figures (peaks, bandwidth, SM count) and the kernel
stack (counted from the measured code) stay fixed. ``--write`` stores the result in
``conf/efficiency/<generation>.yaml`` (comments in that file are rewritten from this script).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from mantile.specs import conf_dir, load_efficiency
from mantile.validate import KINDS, hardware_for, mape, predict_row, read_rows

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


def residuals(x: np.ndarray, base, rows: list[dict], weights: np.ndarray) -> np.ndarray:
    eff = dataclasses.replace(base, **dict(zip(FITTED, x, strict=True)))
    out = []
    for row in rows:
        p = predict_row(row, hardware_for(row, None), eff)
        out.append(math.log(p.predicted / p.measured))
    return np.asarray(out) * weights


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--generation", default="hopper")
    ap.add_argument("--write", action="store_true", help="write the fitted constants into conf/efficiency/")
    args = ap.parse_args()
    rows = [r for f in args.files for r in read_rows(f) if r.get("kind") in KINDS and r.get("kind") != "published"]
    kinds = [r["kind"] for r in rows]
    counts = {k: kinds.count(k) for k in set(kinds)}
    weights = np.array([1.0 / math.sqrt(counts[k]) for k in kinds])
    base = load_efficiency(args.generation)
    x0 = np.array([getattr(base, k) for k in FITTED])
    lo, hi = np.array([b[0] for b in FITTED.values()]), np.array([b[1] for b in FITTED.values()])
    t0 = time.perf_counter()
    fit = least_squares(residuals, np.clip(x0, lo, hi), bounds=(lo, hi), args=(base, rows, weights),
                        x_scale=np.maximum(np.abs(x0), 1e-3), diff_step=1e-3)
    eff = dataclasses.replace(base, **dict(zip(FITTED, fit.x, strict=True)))
    print(f"fitted {len(FITTED)} constants on {len(rows)} rows in {time.perf_counter() - t0:.0f} s "
          f"({fit.nfev} evaluations)")
    for k, v0, v in zip(FITTED, x0, fit.x, strict=True):
        print(f"  {k:<26} {v0:>10.4g} -> {v:>10.4g}")
    preds = [predict_row(r, hardware_for(r, None), eff) for r in rows]
    print("\nresiduals (predicted vs measured):")
    for p in sorted(preds, key=lambda p: -abs(p.error_pct)):
        print(f"  {p.kind:<14} {p.label:<52} {p.measured:>9.4g} ms {p.predicted:>9.4g} ms {p.error_pct:>+6.1f}%")
    print("\nMAPE per kind:")
    for k, v in sorted(mape(preds).items()):
        print(f"  {k:<14} {v:5.1f}%  ({counts[k]} rows)")
    if args.write:
        write_profile(args.generation, eff, [str(f) for f in args.files], len(rows), mape(preds))


def write_profile(generation: str, eff, files: list[str], n_rows: int, errors: dict[str, float]) -> None:
    path = conf_dir() / "efficiency" / f"{generation}.yaml"
    text = path.read_text()
    lines = []
    for line in text.splitlines():
        key = line.split(":", 1)[0]
        if key in FITTED:
            value = getattr(eff, key)
            comment = line.split("#", 1)[1].strip() if "#" in line else ""
            line = f"{key}: {value:.4g}" + (f"   # {comment}" if comment else "")
        elif key == "source":
            summary = ", ".join(f"{k} {v:.1f}%" for k, v in sorted(errors.items()))
            line = (f'source: "fitted by benchmarks/fit_efficiency.py on {", ".join(files)} ({n_rows} rows; '
                    f'MAPE {summary})"')
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
