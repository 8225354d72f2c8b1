"""Dependencies flow one way (DESIGN.md): front doors -> analysis -> engine -> serving -> costs -> specs.
Nothing below the CLI imports Hydra or OmegaConf, and the cost model imports no table or web library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mantile"
FORBIDDEN = {
    "costs": ("hydra", "omegaconf", "polars", "fastapi", "mantile.engine", "mantile.serving", "mantile.analysis",
              "mantile.cli", "mantile.api"),
    "serving": ("hydra", "omegaconf", "polars", "fastapi", "mantile.engine", "mantile.analysis", "mantile.cli",
                "mantile.api"),
    "engine": ("hydra", "omegaconf", "fastapi", "mantile.cli", "mantile.api"),
    "analysis": ("hydra", "omegaconf", "fastapi", "mantile.cli", "mantile.api"),
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_upward_or_front_door_imports(package: str) -> None:
    bad = []
    for path in sorted((PACKAGE / package).rglob("*.py")):
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[package]):
                bad.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not bad
