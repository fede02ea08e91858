"""Bounded retries with backoff for stores that fail transiently."""

from __future__ import annotations

import pytest

from daskflow.io._fs import with_retries


def flaky(failures: int, error: Exception) -> tuple[list[int], object]:
    calls: list[int] = []

    def action() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise error
        return "ok"
    return calls, action


def test_a_transient_failure_is_retried() -> None:
    calls, action = flaky(2, ConnectionError("endpoint restarting"))
    assert with_retries(action, what="reading", delay=0.01) == "ok" and len(calls) == 3


def test_a_lasting_failure_gives_up_after_the_bound() -> None:
    calls, action = flaky(10, TimeoutError("no answer"))
    with pytest.raises(TimeoutError):
        with_retries(action, what="reading", attempts=3, delay=0.01)
    assert len(calls) == 3


def test_answers_that_do_not_change_are_not_retried() -> None:
    calls, action = flaky(10, FileNotFoundError("gone"))
    with pytest.raises(FileNotFoundError):
        with_retries(action, what="reading", delay=0.01)
    assert len(calls) == 1
