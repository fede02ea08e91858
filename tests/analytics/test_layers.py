"""The analytics package keeps the layer rules: no config, statistics without Dask."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[2] / "daskflow" / "analytics"


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_analytics_never_reads_the_config(path: Path) -> None:
    layers = ("daskflow.config", "daskflow.experiment", "daskflow.cli")
    bad = {n for n in imports(path) if n.startswith(layers)}
    assert not bad


@pytest.mark.parametrize("name", ["_abtest_kernels.py", "_abtest_analysis.py"])
def test_statistics_do_not_import_dask(name: str) -> None:
    assert not {n for n in imports(PACKAGE / name) if n.split(".")[0] in ("dask", "distributed")}
