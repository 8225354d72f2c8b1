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
import time
from pathlib import Path

import numpy as np

from mantile.calibrate import FITTED, fit_rows
from mantile.specs import conf_dir, load_efficiency
from mantile.validate import KINDS, hardware_for, mape, predict_row, read_rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--generation", default="hopper")
    ap.add_argument("--write", action="store_true", help="write the fitted constants into conf/efficiency/")
    ap.add_argument("--leave-one-model-out", action="store_true",
                    help="also fit without each model in turn and report the error on the held-out model")
    args = ap.parse_args()
    rows = [r for f in args.files for r in read_rows(f) if r.get("kind") in KINDS and r.get("kind") != "published"]
    base = load_efficiency(args.generation)
    t0 = time.perf_counter()
    eff, fit = fit_rows(base, rows)
    x0 = np.array([getattr(base, k) for k in FITTED])
    counts = {k: sum(r["kind"] == k for r in rows) for k in {r["kind"] for r in rows}}
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
    if args.leave_one_model_out:
        leave_one_model_out(base, rows)


def leave_one_model_out(base, rows: list[dict]) -> None:
    """Generalization check: fit without one model's rows, predict that model's rows."""
    family = lambda r: r["model"].split("_tp")[0]  # noqa: E731  (the tp8 shard is the 70B model)
    print("\nleave one model out (fit on the others, MAPE on the held-out model):")
    for held in sorted({family(r) for r in rows}):
        eff, _ = fit_rows(base, [r for r in rows if family(r) != held])
        preds = [predict_row(r, hardware_for(r, None), eff) for r in rows if family(r) == held]
        errors = ", ".join(f"{k} {v:.1f}%" for k, v in sorted(mape(preds).items()))
        print(f"  held out {held:<16} {errors}")


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
