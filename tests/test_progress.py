"""Progress reports of daskflow/_progress.py in process (terminal modes: tests/cli/test_progress.py)."""

from __future__ import annotations

import logging
import re
import time

import pytest

from daskflow._dask import compute, named
from daskflow._progress import Progress, stage_label


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "daskflow"]


@pytest.mark.slow
def test_a_long_compute_in_a_stage_reports_tasks_with_an_eta(client: object, caplog: pytest.LogCaptureFixture,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # What the features and tune stages get: any compute through daskflow's helper that runs
    # past a couple of seconds reports tasks done / total under the stage's name.
    monkeypatch.setenv("DASKFLOW_PROGRESS_SECONDS", "0.5")
    tasks = [named(time.sleep, "features-slow")(0.25) for _ in range(16)]
    with caplog.at_level(logging.INFO, logger="daskflow"), stage_label("features"):
        compute(tasks, client)
    messages = _messages(caplog)
    progress = [m for m in messages if re.fullmatch(r"features: \d+/16 tasks \(\d+%\), \S+, ETA \S+", m)]
    assert progress, messages
    assert any(re.fullmatch(r"features: 16/16 tasks in [\d.]+s", m) for m in messages), messages


def test_work_of_unknown_length_is_counted_without_a_share_or_eta(caplog: pytest.LogCaptureFixture,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # What a logistic-regression fit reports: passes over the data, however many it takes.
    monkeypatch.setenv("DASKFLOW_PROGRESS_SECONDS", "0.05")
    with caplog.at_level(logging.INFO, logger="daskflow"), Progress("fit", 0, unit="passes") as progress:
        for done in range(1, 6):
            time.sleep(0.03)
            progress.update(done)
    messages = _messages(caplog)
    assert any(re.fullmatch(r"fit: [1-5] passes, \S+", m) for m in messages), messages
    assert re.fullmatch(r"fit: 5 passes in [\d.]+s", messages[-1]), messages
    assert not any("ETA" in m or "%" in m for m in messages), messages


def test_short_work_is_silent_and_nested_work_leaves_it_to_the_outer(caplog: pytest.LogCaptureFixture,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASKFLOW_PROGRESS_SECONDS", "0.01")
    with caplog.at_level(logging.INFO, logger="daskflow"):
        with Progress("quick", 3, quiet_for=10.0) as quick:  # over long before 10 s
            for done in range(1, 4):
                time.sleep(0.02)
                quick.update(done)
        assert _messages(caplog) == []
        with Progress("outer", 2, unit="steps") as outer:
            with Progress("inner", 4) as inner:
                for done in range(1, 5):
                    time.sleep(0.02)
                    inner.update(done)
            outer.update(2)
    messages = _messages(caplog)
    assert messages and not [m for m in messages if m.startswith("inner")], messages
    assert re.fullmatch(r"outer: 2/2 steps in [\d.]+s", messages[-1]), messages
