"""The bad-input catalogue's harness: every case goes through the CLI (``daskflow.cli.main``).

Each case must exit with code 2, print exactly one ``daskflow: error:`` line naming the
problem, where it is and how to fix it, print no traceback, and publish nothing. The cases
live in ``tests/catalogue/test_*.py``, one module per class of mistake, each with a
``CASES`` dict run by :func:`check_case`; docs/errors.md lists every one of them.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from daskflow.cli import main


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Case:
    """One bad input: how to make it (returns extra CLI arguments) and what the message says."""

    make: Callable[[Path, Path], list[str]]
    fragments: tuple[str, ...]
    command: str = "run"


def base_config(lake: Path, out: Path) -> dict:
    """A small recommender experiment on the lake (popularity: quick to fit)."""
    return {
        "experiment": {"name": "bad", "stages": ["interactions", "train"]},
        "cluster": {"n_workers": 1, "processes": False, "dashboard_address": ":0"},
        "data": {"sources": {
            "listens": {"uri": str(lake / "listens"),
                        "schema": {"user_id": "string", "track_id": "string", "ms_played": "integer",
                                   "ts": "timestamp"}},
            "users": {"uri": str(lake / "users")},
            "ad_impressions": {"uri": str(lake / "ad_impressions")},
            "conversions": {"uri": str(lake / "conversions")}}},
        "model": {"name": "popularity"},
        "output": {"dir": str(out)},
    }


def copy_listens(lake: Path, work: Path) -> Path:
    target = work / "listens"
    shutil.copytree(lake / "listens", target)
    return target


def write_day(root: Path, day: str, table: pa.Table, name: str = "extra.parquet") -> None:
    (root / f"date={day}").mkdir(parents=True, exist_ok=True)
    pq.write_table(table, root / f"date={day}" / name)


def listens_rows(user_id: pa.Array | list, ms_played: pa.Array | list) -> pa.Table:
    n = len(ms_played)
    return pa.table({"user_id": user_id, "track_id": [f"t{i}" for i in range(n)],
                     "artist_id": ["a"] * n, "ms_played": ms_played,
                     "ts": pa.array([1_767_225_600_000 + i for i in range(n)], pa.timestamp("ms")),
                     "platform": ["web"] * n, "country": ["SE"] * n})


def uri(path: Path | str) -> list[str]:
    return [f"data.sources.listens.uri={path}"]



def make_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny lake the catalogue runs on."""
    from daskflow.sample import generate_lake
    from tests.conftest import TINY

    root = tmp_path_factory.mktemp("bad-lake") / "lake"
    generate_lake(str(root), scale=TINY, format="parquet", seed=7)
    return root


def check_case(case: Case, lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
               monkeypatch: pytest.MonkeyPatch) -> str:
    """Run ``case`` through the CLI and assert the catalogue's promises; returns stderr."""
    monkeypatch.delenv("DASKFLOW_SURELY_UNSET_VARIABLE", raising=False)
    out = tmp_path / "out"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(base_config(lake, out)))
    extra = case.make(lake, tmp_path)
    if extra == ["--config-missing"]:
        argv = ["-q", case.command, str(tmp_path / "missing.yaml")]
    elif extra[:1] == ["--argv"]:  # the case wrote its own command line (its own config file)
        argv = ["-q", case.command, *extra[1:]]
    else:
        argv = ["-q", case.command, str(config), *extra]
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert "Traceback" not in captured.err
    errors = [line for line in captured.err.splitlines() if line.startswith("daskflow: error:")]
    assert len(errors) == 1, captured.err
    for fragment in case.fragments:
        assert fragment in captured.err, captured.err
    published = [p for p in (out / "bad").glob("*") if p.name != "fixed"] if (out / "bad").exists() else []
    assert published == [], f"a failed run published {published}"
    assert not any(p.name.startswith(".") and p.is_dir() for p in (out / "bad").glob(".*")) \
        if (out / "bad").exists() else True
    return captured.err
