"""Write conf/bands.csv: the cost model's error bands per regime, from validate's residuals.

    python benchmarks/make_bands.py            # print the table and the held-out coverage
    python benchmarks/make_bands.py --write    # and write conf/bands.csv

Inputs: the published serving results (benchmarks/published/*.csv) and our whole-model GPU
measurements (benchmarks/calibration/*.jsonl), each predicted as `python -m mantile.validate`
predicts it. How a band is made: mantile/residuals.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mantile import residuals
from mantile.specs import conf_dir
from mantile.specs.bands import FILE
from mantile.validate import predictions, read_rows

HERE = Path(__file__).resolve().parent
SOURCES = sorted([*(HERE / "published").glob("*.csv"), *(HERE / "calibration").glob("*.jsonl")])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help=f"write conf/{FILE}")
    args = ap.parse_args(argv)
    rows = [r for f in SOURCES for r in read_rows(f)]
    preds = predictions(rows, skips={}, errors=[], passed=[])
    rs = residuals.residuals(preds)
    table = residuals.build(rs)
    text = residuals.to_csv(table, ", ".join(str(p.relative_to(HERE.parent)) for p in SOURCES))
    print(text)
    print(residuals.coverage_report(rs))
    if args.write:
        (conf_dir() / FILE).write_text(text)
        print(f"wrote {conf_dir() / FILE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
