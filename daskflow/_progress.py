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
    try:
        for done, future in enumerate(as_completed(futures), start=1):
            results[order[future.key]] = future.result()
            now = time.monotonic()
            if on_progress is not None:
                on_progress(done, total)
            if now - last >= report_every or done == total:
                log.info("%s: %d/%d done (%.1fs)", label, done, total, now - started)
                last = now
    except BaseException:  # a failed task, Ctrl-C, SIGTERM as the CLI raises it
        _stop(client, futures)
        raise
    return results


#: Seconds to wait for tasks already running when a batch is abandoned.
STOP_TIMEOUT = 15.0


def _stop(client: Any, futures: Sequence[Any], timeout: float = STOP_TIMEOUT) -> None:
    """Cancel ``futures`` and wait (up to ``timeout``) until none of them is still running.

    Cancelling does not stop a task a worker thread is executing: it runs to its end.
    A caller that removes a temporary output once this batch has failed (an interrupted
    ``generate`` discarding its lake) would otherwise see those tasks write into the
    directory again after it was removed.
    """
    keys = {future.key for future in futures}

    def running(dask_worker: Any) -> int:
        return sum(1 for task in dask_worker.state.executing if task.key in keys)

    # Workers the same signal ended (SIGTERM to the process group) cannot answer: an
    # embedded scheduler logs each such "broadcast to ... failed" at error level, which
    # says nothing here, where stopping them is the point.
    scheduler_log = logging.getLogger("distributed.scheduler")
    unanswered = _Dropping("broadcast to ")
    scheduler_log.addFilter(unanswered)
    try:
        client.cancel(list(futures))
        deadline = time.monotonic() + timeout
        while any(client.run(running, on_error="ignore").values()) and time.monotonic() < deadline:
            time.sleep(0.1)
    except Exception as exc:  # the cluster may be going away too; the original error matters
        log.debug("could not wait for the cancelled tasks of a failed batch: %s", exc)
    finally:
        scheduler_log.removeFilter(unanswered)


class _Dropping(logging.Filter):
    """Drops the records whose message starts with ``prefix``."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


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
