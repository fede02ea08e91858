"""The catalogue's lake: one small generated lake per test module (cases copy what they change)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.catalogue._harness import make_lake


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_lake(tmp_path_factory)
