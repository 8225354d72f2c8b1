"""docs/columns.md documents every column of the results and capacity tables."""

from __future__ import annotations

import re
from pathlib import Path

from mantile.analysis.capacity import capacity_table
from mantile.analysis.sla import Sla
from mantile.engine.runner import run
from mantile.engine.spec import make_spec

DOC = Path(__file__).resolve().parent.parent / "docs" / "columns.md"


def documented() -> set[str]:
    names: set[str] = set()
    for line in DOC.read_text().splitlines():
        if line.startswith("| `"):
            names |= set(re.findall(r"`([a-z0-9_]+)`", line.split("|")[1]))
    return names


def test_every_results_and_capacity_column_is_documented() -> None:
    res = run(make_spec("mixtral_8x7b", "nvidia_h100_80gb", {"tp": [1, 2, 3], "batch_size": [1, 64],
                                                              "input_seq": 1024, "output_seq": 128}))
    cap = capacity_table(res.results.lazy(), Sla(tpot_ms=50))
    missing = (set(res.results.columns) | set(cap.columns)) - documented()
    assert not missing, f"add these columns to docs/columns.md: {sorted(missing)}"
