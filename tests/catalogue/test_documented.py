"""Every case of the bad-input catalogue is listed in docs/errors.md."""

from __future__ import annotations

import importlib
from pathlib import Path

ROOT = Path(__file__).parents[2]


def all_cases() -> dict[str, object]:
    cases: dict[str, object] = {}
    for module in sorted((ROOT / "tests" / "catalogue").glob("test_*.py")):
        found = getattr(importlib.import_module(f"tests.catalogue.{module.stem}"), "CASES", {})
        duplicated = set(found) & set(cases)
        assert not duplicated, f"case names used twice: {duplicated}"
        cases.update(found)
    return cases


def test_the_catalogue_is_documented() -> None:
    text = (ROOT / "docs" / "errors.md").read_text()
    missing = [name for name in all_cases() if f"| {name} |" not in text]
    assert missing == []


def test_the_catalogue_is_large() -> None:
    assert len(all_cases()) >= 60
