"""One message per failure: distributed's repetitions of an error daskflow reports are dropped.

A task that raises a :class:`~daskflow.DaskflowError` (NaN weights found while a worker
reads a block, say) is logged by the worker at error level with the task and a
traceback, then re-raised in the client, where the CLI prints it as its one
``daskflow: error:`` line. The worker's record says the same thing a second time, first,
and with a traceback, so it is filtered out; any other task failure still logs as usual
(and reaches the client with its traceback).

A ``client.gather`` that an interrupt (or an error in one of its futures) abandons leaves
one asyncio task per future waiting; closing the client ends each with distributed's
internal ``AllExit``, which asyncio reports as "Task exception was never retrieved" with a
traceback, dozens of times after the CLI's one line. Those records are dropped too.
"""

from __future__ import annotations

import logging
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from daskflow._errors import DaskflowError

__all__ = ["QuietUserErrors", "UserErrorFilter", "AbandonedGatherFilter", "quiet_abandoned_gathers"]

#: The logger distributed's worker reports failed tasks on.
_WORKER_LOGGER = "distributed.worker"


def _error_names() -> set[str]:
    """Names of DaskflowError and every subclass defined so far (task modules add theirs)."""
    names, todo = set(), [DaskflowError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


class UserErrorFilter(logging.Filter):
    """Drops the worker's "Compute Failed" record of a task whose exception is a daskflow error."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("Compute Failed"):
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        # The record's arguments: key, state, task, repr(exception), traceback text.
        exception = str(args[3]) if len(args) > 3 else ""
        return not any(exception.startswith(f"{name}(") for name in _error_names())


class QuietUserErrors(WorkerPlugin):
    """Installs :class:`UserErrorFilter` on a worker's logger while the worker runs."""

    name = "daskflow-quiet-user-errors"

    def __init__(self) -> None:
        self._filter = UserErrorFilter()

    def setup(self, worker: Any) -> None:
        logging.getLogger(_WORKER_LOGGER).addFilter(self._filter)

    def teardown(self, worker: Any) -> None:
        logging.getLogger(_WORKER_LOGGER).removeFilter(self._filter)


class AbandonedGatherFilter(logging.Filter):
    """Drops asyncio's "never retrieved" record of a gather task its client's close ended."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (error is not None and type(error).__name__ == "AllExit"
                    and type(error).__module__.startswith("distributed"))


_ABANDONED_GATHERS = AbandonedGatherFilter()


def quiet_abandoned_gathers() -> None:
    """Install :class:`AbandonedGatherFilter` on asyncio's logger (once per process)."""
    logger = logging.getLogger("asyncio")
    if _ABANDONED_GATHERS not in logger.filters:
        logger.addFilter(_ABANDONED_GATHERS)
