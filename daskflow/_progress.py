"""Running a batch of Dask tasks with progress reports on long stages."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import dask

__all__ = ["compute_tasks", "wait_with_progress"]

log = logging.getLogger("daskflow")


def compute_tasks(tasks: Sequence[Any], *, client: Any = None, label: str = "tasks",
                  report_every: float = 5.0,
                  on_progress: Callable[[int, int], None] | None = None) -> list[Any]:
    """Compute Dask collections/delayed objects, logging progress at most every few seconds.

    With a distributed ``client`` the tasks run as futures and completions are reported
    as they arrive; without one they run on dask's default scheduler in one call.
    Results come back in the order of ``tasks``.
    """
    total = len(tasks)
    if client is None:
        return list(dask.compute(*tasks))
    from distributed import as_completed

    futures = client.compute(list(tasks))
    order = {future.key: index for index, future in enumerate(futures)}
    results: list[Any] = [None] * total
    started = last = time.monotonic()
    for done, future in enumerate(as_completed(futures), start=1):
        results[order[future.key]] = future.result()
        now = time.monotonic()
        if on_progress is not None:
            on_progress(done, total)
        if now - last >= report_every or done == total:
            log.info("%s: %d/%d done (%.1fs)", label, done, total, now - started)
            last = now
    return results


def wait_with_progress(collections: Sequence[Any], *, client: Any = None, label: str = "tasks",
                       report_every: float = 5.0) -> None:
    """Wait for persisted collections' partitions, logging progress at most every few seconds.

    Only meaningful on a distributed ``client`` (elsewhere ``persist`` has already waited).
    """
    if client is None:
        return
    from distributed import as_completed, futures_of

    futures = futures_of(list(collections))
    total = len(futures)
    started = last = time.monotonic()
    for done, future in enumerate(as_completed(futures), start=1):
        if future.status == "error":
            future.result()  # raises the task's exception here
        now = time.monotonic()
        if now - last >= report_every or (done == total and now - started >= report_every):
            log.info("%s: %d/%d partitions done (%.1fs)", label, done, total, now - started)
            last = now
