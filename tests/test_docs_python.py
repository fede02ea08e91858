"""Every ```python block of docs/python.md runs, in order, in one namespace, as a notebook would.

The blocks run in a temporary directory holding the session's tiny lake at data/sample.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).parents[1] / "docs" / "python.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


@pytest.mark.slow
def test_docs_python_examples_run(tiny_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sample").symlink_to(tiny_lake)
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) >= 4
    namespace: dict[str, object] = {}
    for index, block in enumerate(blocks):
        exec(compile(block, f"{DOC.name}[python block {index}]", "exec"), namespace)
    out = capsys.readouterr().out
    assert "rejected before any work: " in out and "n_factors" in out
    assert "on-my-client running" in out  # the user's client was left open by the run
    assert sorted(p.name for p in (tmp_path / "outputs" / "notebook").iterdir())[-1] == "on-my-client"
