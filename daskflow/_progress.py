"""Progress of long work: a bar redrawn in place on a terminal, a plain line every few seconds elsewhere.

One mechanism for every stage (docs/architecture.md, "Watching a run"). Work that takes a
while — a batch of Dask futures, ALS iterations, tuning fits — runs inside a
:class:`Progress`. Where it draws depends on the ``daskflow`` logger's handlers:

- the CLI installs a :class:`TerminalHandler` on stderr; when stderr is a TTY the
  progress is a bar on its last line, redrawn in place, which log lines print above;
- everywhere else (a pipe, a file, a notebook, a library caller with its own logging)
  it is an INFO line every ``DASKFLOW_PROGRESS_SECONDS`` seconds (default 5) and one at
  the end, which run.log records too.

Progress nested in another (the computes inside an ALS iteration) stays silent: the
outer one says more. Records logged with ``extra=DETAIL`` (e.g. one line per ALS
iteration) reach run.log and library callers' handlers but not the terminal, where the
progress line stands for them.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import dask

__all__ = ["DETAIL", "Progress", "TerminalHandler", "compute_tasks", "gather_with_progress",
           "stage_label", "wait_with_progress"]

log = logging.getLogger("daskflow")

#: ``extra=`` of a record only run.log and library callers' handlers keep (not the terminal).
DETAIL = {"daskflow_detail": True}

#: Seconds between plain progress lines when stderr is not a terminal (environment override).
INTERVAL_VARIABLE = "DASKFLOW_PROGRESS_SECONDS"
DEFAULT_INTERVAL = 5.0

#: Batches that finish sooner than this stay silent (most computes are sub-second).
QUIET_FOR = 2.0

#: Seconds between redraws of a bar: often enough to look live, rarely enough to cost nothing.
_REDRAW = 0.1
_CLEAR_LINE = "\r\x1b[K"

_stage: contextvars.ContextVar[str | None] = contextvars.ContextVar("daskflow_stage", default=None)
_active: list[Progress] = []
_active_lock = threading.Lock()


def report_interval() -> float:
    """Seconds between plain progress lines: ``DASKFLOW_PROGRESS_SECONDS`` or 5."""
    try:
        value = float(os.environ.get(INTERVAL_VARIABLE, DEFAULT_INTERVAL))
    except ValueError:
        return DEFAULT_INTERVAL
    return value if value > 0 else DEFAULT_INTERVAL


@contextlib.contextmanager
def stage_label(name: str) -> Iterator[None]:
    """Label progress with the running stage's name when its code gives none."""
    token = _stage.set(name)
    try:
        yield
    finally:
        _stage.reset(token)


class TerminalHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The CLI's stderr handler: no DETAIL records, and a progress bar kept below the log lines."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.addFilter(lambda record: not getattr(record, "daskflow_detail", False))
        self._bar = ""

    @property
    def interactive(self) -> bool:
        """A bar is drawn only on a terminal, and only when INFO lines are shown (not ``-q``)."""
        try:
            return bool(self.stream.isatty()) and self.level <= logging.INFO
        except (AttributeError, ValueError, OSError):  # no isatty, or a stream closed since
            return False

    def width(self) -> int:
        try:
            return os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            return 80

    def emit(self, record: logging.LogRecord) -> None:
        # handle() holds self.lock here: the bar is cleared, the line printed, the bar redrawn.
        if self._bar:
            self.stream.write(_CLEAR_LINE)
        super().emit(record)
        if self._bar:
            self.stream.write(self._bar)
            self.flush()

    def draw(self, text: str) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._bar = text[: max(self.width() - 1, 10)]
            self.stream.write(_CLEAR_LINE + self._bar)
            self.flush()

    def clear(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if self._bar:
                self._bar = ""
                self.stream.write(_CLEAR_LINE)
                self.flush()


def _terminal() -> TerminalHandler | None:
    for handler in log.handlers:
        if isinstance(handler, TerminalHandler) and handler.interactive:
            return handler
    return None


def _duration(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, seconds = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Progress:
    """Progress of ``total`` units of work: use as a context manager and call :meth:`update`.

    Parameters
    ----------
    label : what is running (``"ALS"``, ``"tune"``); None for the running stage's name
    total : units of work; 0 when not known ahead (then no share or ETA is shown)
    unit : what a unit is (``"tasks"``, ``"iterations"``)
    done : units already done before this run of the work (a resumed fit)
    quiet_for : seconds of silence before anything is shown; work that ends sooner says
        nothing at all
    """

    def __init__(self, label: str | None, total: int, *, unit: str = "tasks", done: int = 0,
                 quiet_for: float = 0.0) -> None:
        self.label = label or _stage.get() or "dask"
        self.total, self.unit, self.quiet_for = int(total), unit, quiet_for
        self.done = self._first = int(done)
        self.note = ""  #: shown after the counts (e.g. the latest loss)
        self.summary = ""  #: added to the final line (e.g. the loss from first to last)
        self._terminal: TerminalHandler | None = None
        self._outermost = False
        self._shown = False

    def __enter__(self) -> Progress:
        self._started = self._last_line = time.monotonic()
        self._last_draw = 0.0
        with _active_lock:
            self._outermost = not _active
            _active.append(self)
        self._terminal = _terminal() if self._outermost else None
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        with _active_lock:
            _active.remove(self)
        if self._terminal is not None:
            self._terminal.clear()
        elapsed = time.monotonic() - self._started
        if exc_type is None and self._outermost and (self._shown or elapsed >= self.quiet_for):
            extra = ", ".join(part for part in (self.summary,) if part)
            counts = f"{self.done}/{self.total}" if self.total > 0 else f"{self.done}"
            log.info("%s: %s %s in %s%s", self.label, counts, self.unit, _duration(elapsed),
                     f", {extra}" if extra else "")

    def resume_at(self, done: int) -> None:
        """``done`` units were done before this run (a resumed fit): the ETA counts from here."""
        self.done = self._first = int(done)

    @property
    def silent(self) -> bool:
        """True inside another progress, which reports for both."""
        return not self._outermost

    def update(self, done: int, note: str | None = None) -> None:
        """``done`` units are done; shows it if it is time to (a redraw, or a line every few seconds)."""
        self.done = int(done)
        if note is not None:
            self.note = note
        if not self._outermost:
            return
        now = time.monotonic()
        elapsed = now - self._started
        if elapsed < self.quiet_for:
            return
        if self._terminal is not None:
            if now - self._last_draw >= _REDRAW or self.done == self.total:
                self._terminal.draw(self._bar(elapsed))
                self._last_draw, self._shown = now, True
        elif now - self._last_line >= report_interval():
            log.info("%s", self._line(elapsed))
            self._last_line, self._shown = now, True

    def _eta(self, elapsed: float) -> str:
        finished = self.done - self._first
        if finished <= 0:
            return "?"
        return _duration(elapsed / finished * (self.total - self.done))

    def _line(self, elapsed: float) -> str:
        if self.total <= 0:
            return f"{self.label}: {self.done} {self.unit}, {_duration(elapsed)}" + (
                f", {self.note}" if self.note else "")
        share = self.done / self.total
        note = f", {self.note}" if self.note else ""
        return (f"{self.label}: {self.done}/{self.total} {self.unit} ({share:.0%}), {_duration(elapsed)}, "
                f"ETA {self._eta(elapsed)}{note}")

    def _bar(self, elapsed: float, width: int = 24) -> str:
        if self.total <= 0:  # no bar to fill: a counter
            return f"{self.label} {self.done} {self.unit}  {_duration(elapsed)}" + (
                f"  {self.note}" if self.note else "")
        share = self.done / self.total
        filled = int(round(share * width))
        note = f"  {self.note}" if self.note else ""
        return (f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {self.unit} "
                f"{share:4.0%}  {_duration(elapsed)}  ETA {self._eta(elapsed)}{note}")


def gather_with_progress(futures: Sequence[Any], *, client: Any, label: str | None = None,
                         unit: str = "tasks", quiet_for: float = QUIET_FOR) -> list[Any]:
    """``client.gather(futures)``, showing progress as they finish if that takes a while.

    Inside another progress it is a plain gather (no per-future bookkeeping on hot paths).
    Errors are raised as ``client.gather`` raises them.
    """
    futures = list(futures)
    if not futures:
        return []
    with Progress(label, len(futures), unit=unit, quiet_for=quiet_for) as progress:
        if not progress.silent:
            from distributed import as_completed

            for done, future in enumerate(as_completed(futures), start=1):
                progress.update(done)
                if future.status == "error":
                    break  # gather raises it, as it would have without the progress
        results = client.gather(futures)
    return list(results)


def compute_tasks(tasks: Sequence[Any], *, client: Any = None, label: str = "tasks",
                  report_every: float | None = None,
                  on_progress: Callable[[int, int], None] | None = None) -> list[Any]:
    """Compute Dask collections/delayed objects, showing progress and a final line.

    With a distributed ``client`` the tasks run as futures and completions are reported
    as they arrive; without one they run on dask's default scheduler in one call.
    Results come back in the order of ``tasks``. ``report_every`` is accepted for
    callers of the older signature; the interval is :func:`report_interval`.
    """
    total = len(tasks)
    if client is None:
        return list(dask.compute(*tasks))
    from distributed import as_completed

    futures = client.compute(list(tasks))
    order = {future.key: index for index, future in enumerate(futures)}
    results: list[Any] = [None] * total
    try:
        with Progress(label, total) as progress:
            for done, future in enumerate(as_completed(futures), start=1):
                results[order[future.key]] = future.result()
                if on_progress is not None:
                    on_progress(done, total)
                progress.update(done)
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


def wait_with_progress(collections: Sequence[Any], *, client: Any = None, label: str | None = None,
                       unit: str = "partitions", quiet_for: float = QUIET_FOR) -> None:
    """Wait for persisted collections' partitions, showing progress if that takes a while.

    Only meaningful on a distributed ``client`` (elsewhere ``persist`` has already waited).
    """
    if client is None:
        return
    from distributed import as_completed, futures_of

    futures = futures_of(list(collections))
    if not futures:
        return
    with Progress(label, len(futures), unit=unit, quiet_for=quiet_for) as progress:
        for done, future in enumerate(as_completed(futures), start=1):
            if future.status == "error":
                future.result()  # raises the task's exception here
            progress.update(done)
