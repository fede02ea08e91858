"""``validate`` rejects what ``run`` rejects before computing, with the same message.

Both commands run on every case of the bad-input catalogue (tests/catalogue/*.py). A case
``validate`` rejects must fail ``run`` with the very same message (run performs the same
preflight before it starts a cluster). A case ``validate`` accepts must be one that can
only be found while computing or connecting, listed in :data:`FOUND_WHILE_COMPUTING` with
the reason (docs/errors.md, "Found only while computing"); the catalogue itself shows
``run`` rejects those.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import yaml

from daskflow.cli import main
from tests.catalogue._harness import Case, base_config, make_lake
from tests.catalogue.test_documented import all_cases

# The peers the catalogue's address cases point at (a web server, a silent listener, a
# scheduler and its worker): imported, the module's autouse fixture serves these cases too.
from tests.catalogue.test_exits import WITHOUT_BOKEH, peers  # noqa: F401

_VALUES = "the data's values (validate reads footers, not rows)"
_PAGE = "a data page, read only when computing (the footer is fine)"
_CLUSTER = "a running cluster (validate starts none and connects to none)"
_CLAIM = ("the run's claim on its outputs, taken atomically when it starts (what validate saw may change "
          "before the run; the claim is the check)")

#: Cases only a run can find, and why validate cannot (it reads no data and starts no cluster).
FOUND_WHILE_COMPUTING: dict[str, str] = {
    "NaN play counts": _VALUES,
    "negative play counts": _VALUES,
    "empty user IDs": _VALUES,
    "empty user IDs in the kpis stage": _VALUES,
    "whitespace-only item IDs": _VALUES,
    "a single user": _VALUES + ": the distinct users are counted",
    "empty table after filters": _VALUES + ": the filters are applied to rows",
    "block_size making too many blocks": "the number of distinct users and items, counted from the rows",
    "n_factors beyond the workers' memory": "the number of distinct users and items, counted from the rows",
    "corrupt data page in the interactions stage": _PAGE,
    "corrupt data page in the kpis stage": _PAGE,
    "duplicate ids in the item table": _VALUES,
    "content column of an unsupported type": _VALUES + ": the message names a value of the column",
    "content vectors of differing lengths": _VALUES,
    "no warm items with content": _VALUES + ": which items have plays",
    "assignment log with two experiments": _VALUES,
    "unit assigned to two variants": _VALUES,
    "variant in the split without units": _VALUES,
    "missing control variant": _VALUES,
    "metric window with no rows": _VALUES,
    "sample-ratio mismatch with fail_on_srm": _VALUES + ": the units per variant are counted",
    "unreachable scheduler address": _CLUSTER,
    "web server at the scheduler address": _CLUSTER,
    "silent listener at the scheduler address": _CLUSTER,
    "worker address as the scheduler address": _CLUSTER,
    "tls address of a plain scheduler": _CLUSTER,
    "tls address without certificates": _CLUSTER + ": whether TLS is needed is the peer's answer",
    "user error raised in a worker process": _CLUSTER,
    "aggregate cutoff outside the data": _VALUES + ": the events' earliest and latest times",
    "label window not fully observed": _VALUES + ": the latest event of the sources read",
    "anchored label window not observed": _VALUES + ": each entity's anchor (its first event) and the "
                                                  "latest event",
    "run id claimed by a running run": _CLAIM,
    "run id of a killed run": _CLAIM,
    "stale claim on a run id": _CLAIM,
    "run directory appearing during the run": "a directory that appears while the run computes",
    "predict output claimed by a running run": _CLAIM,
    "predict output appearing during the run": "an output that appears while the run computes",
    "label with three values": _VALUES + ": the label column's distinct values",
    "positive label value that never occurs": _VALUES + ": the label column's distinct values",
    "split leaving no test rows": _VALUES + ": the rows on each side are counted",
    "entity id that is not unique": _VALUES + ": the ids are counted",
}


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("daskflow: error:")]
    return code, lines[0] if lines else err[-2000:]


def _argv(case: Case, command: str, lake: Path, work: Path) -> list[str]:
    config = work / "config.yaml"
    config.write_text(yaml.safe_dump(base_config(lake, work / "out")))
    extra = case.make(lake, work)
    if extra == ["--config-missing"]:
        return ["-q", command, str(work / "missing.yaml")]
    if extra[:1] == ["--argv"]:
        return ["-q", command, *extra[1:]]
    return ["-q", command, str(config), *extra]


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_lake(tmp_path_factory)


def _run_only(case: Case) -> bool:
    """A case made of ``run``'s own options (``--resume``), which validate does not take."""
    with_placeholders = case.make.__code__.co_consts
    return any(isinstance(c, str) and c == "--resume" for c in with_placeholders)


RUN_CASES = {name: case for name, case in all_cases().items()
             if case.command == "run" and not _run_only(case)}


@pytest.mark.parametrize("name", sorted(RUN_CASES))
def test_validate_rejects_what_run_rejects_before_computing(name: str, lake: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    case = RUN_CASES[name]
    if name in WITHOUT_BOKEH:
        monkeypatch.setitem(sys.modules, "bokeh", None)  # as tests/catalogue/test_exits.py does
    monkeypatch.delenv("DASKFLOW_SURELY_UNSET_VARIABLE", raising=False)
    started = time.monotonic()
    argv = _argv(case, "validate", lake, tmp_path)
    code, message = _error(argv, capsys)
    if name in FOUND_WHILE_COMPUTING:
        assert code == 0, f"{name!r} is listed as found only while computing, but validate rejects it " \
                          f"({message}): remove it from FOUND_WHILE_COMPUTING"
        return
    assert code == 2, f"validate accepts {name!r}, which run rejects: check it in the preflight, or list " \
                      f"it in FOUND_WHILE_COMPUTING with the reason ({message})"
    # The same files and arguments: validate changed nothing the run then reads.
    run_code, run_message = _error([argv[0], "run", *argv[2:]], capsys)
    assert (run_code, run_message) == (2, message)
    assert time.monotonic() - started < 30


def test_every_listed_case_exists() -> None:
    assert set(FOUND_WHILE_COMPUTING) - set(RUN_CASES) == set()
