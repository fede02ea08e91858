"""The analytics package keeps the layer rules (tests/test_layers.py checks the config rule and
every ``*_kernels.py`` module): the in-memory statistics beside the kernels import no Dask either."""

from __future__ import annotations

from pathlib import Path

from tests.test_layers import imports

PACKAGE = Path(__file__).parents[2] / "daskflow" / "analytics"


def test_the_statistics_do_not_import_dask() -> None:
    names = imports(PACKAGE / "_abtest_analysis.py")
    assert not {n for n in names if n.split(".")[0] in ("dask", "distributed")}
