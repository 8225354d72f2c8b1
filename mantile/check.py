"""``python -m mantile.check FILE...``: flag claimed results that the physics or the model's error band
say are wrong as stated.

Reads the same files as ``python -m mantile.validate`` (measurement JSON lines, the published-results
CSVs) and predicts every row the same way. Each row is then held against:

- the **physics floor** of its point (``serving/ideal.py``: datasheet peaks, no efficiency, no fixed
  cost, no host time; a ceiling for throughputs). A claim that beats it is impossible as stated: a
  unit (ms for s, per device for total), a mapping (the plan, dtype or load the row names) or a typo.
  Exit status 1 when any unmarked row does.
- the **80% error band** of its regime (``conf/bands.csv``): outside it, the claim is far from what the
  model predicts for results of its kind (1 in 5 correct results is, by construction): worth a look,
  not an error.

A row whose ``check`` column is set (a reason, e.g. "impossible: per-GPU value reported as total") is
marked at its source: it is listed as marked and never counted as a violation.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from mantile.specs import SpecError
from mantile.validate import (
    KINDS,
    MARK,
    OTHER_KINDS,
    WHERE,
    Prediction,
    _present,
    predictions,
    read_rows,
    unusable_rows,
)


@dataclass(frozen=True)
class Flag:
    where: str
    label: str
    kind: str  # "floor" | "band"
    reason: str
    marked: str = ""


def flags(preds: list[Prediction], marks: dict[str, str] | None = None) -> list[Flag]:
    """Every prediction that beats its floor or falls outside its band, with the reason."""
    marks = marks or {}
    out = []
    for p in preds:
        mark = marks.get(p.where, "")
        unit = p.metric.rsplit("_", 1)[-1] if p.metric.endswith("_ms") else (
            "tokens/s" if p.is_rate else "")
        if math.isfinite(p.floor) and (p.measured > p.floor if p.is_rate else p.measured < p.floor):
            bound = "ceiling" if p.is_rate else "floor"
            reason = (f"{p.metric} {p.measured:.4g} {unit} beats the physics {bound} {p.floor:.4g} {unit} "
                      f"(x{p.measured / p.floor:.3g}; datasheet peaks, no overhead): impossible as stated; "
                      "check the unit, the mapping (plan, dtype, load) or a typo")
            out.append(Flag(p.where, p.label, "floor", reason, mark))
        elif math.isfinite(p.band_low) and not p.band_low <= p.measured <= p.band_high:
            side = "below" if p.measured < p.band_low else "above"
            reason = (f"{p.metric} {p.measured:.4g} {unit} is {side} the model's 80% band "
                      f"[{p.band_low:.4g}, {p.band_high:.4g}] (predicted {p.predicted:.4g})")
            out.append(Flag(p.where, p.label, "band", reason, mark))
    return out


def report(fl: list[Flag], compared: int) -> str:
    lines = []
    for f in fl:
        state = f"marked ({f.marked})" if f.marked else ("IMPOSSIBLE" if f.kind == "floor" else "outside band")
        lines.append(f"{f.where}: {state}: {f.label}: {f.reason}")
    floor = sum(1 for f in fl if f.kind == "floor" and not f.marked)
    band = sum(1 for f in fl if f.kind == "band" and not f.marked)
    marked = sum(1 for f in fl if f.marked)
    lines.append(f"\nchecked {compared} rows: {floor} beat the physics floor, {band} outside the 80% band, "
                 f"{marked} marked at the source")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mantile.check", description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path, help="measurement files (.jsonl, .csv, .parquet)")
    ap.add_argument("--hardware", help="hardware id for rows that do not name one (default: from 'device')")
    ap.add_argument("--serving", default="auto", help="serving profile: auto (as validate), or a conf/serving/ id")
    ap.add_argument("--floors-only", action="store_true", help="list only rows that beat the physics floor")
    args = ap.parse_args(argv)
    errors: list[tuple[str, str]] = []
    try:
        rows = [r for f in args.files for r in read_rows(f)]
        errors += unusable_rows(rows)
        rows = [r for r in rows if "_not_an_object" not in r and r.get("kind") in (*KINDS, *OTHER_KINDS)]
        preds = predictions(rows, args.hardware, serving=args.serving, skips={}, errors=errors, passed=[],
                            marked=True)
        marks = {str(r[WHERE]): str(r[MARK]) for r in rows if _present(r.get(MARK))}
        fl = flags(preds, marks)
    except (SpecError, FileNotFoundError) as e:
        print(f"mantile.check: error: {e}", file=sys.stderr)
        return 2
    if args.floors_only:
        fl = [f for f in fl if f.kind == "floor"]
    print(report(fl, len(preds)))
    for where, why in errors:
        print(f"skipped {where}: {why}")
    return 1 if any(f.kind == "floor" and not f.marked for f in fl) else 0


if __name__ == "__main__":
    sys.exit(main())
