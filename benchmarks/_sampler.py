"""Peak worker memory and spilled bytes during a benchmark, polled through the scheduler."""

from __future__ import annotations

import threading
import time
from typing import Any

__all__ = ["Poller", "RssSampler", "ProcessRssSampler"]


class Poller:
    """Calls :meth:`poll` every ``period`` seconds on a daemon thread while a ``with`` block runs.

    ``poll`` returning true stops the polling early. Subclasses set their state, then call
    ``super().__init__(period)``.
    """

    def __init__(self, period: float) -> None:
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def poll(self) -> bool | None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.poll():
                return
            self._stop.wait(self.period)

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class RssSampler(Poller):
    """Polls every worker's RSS (through the scheduler's heartbeat metrics) and keeps the peak."""

    def __init__(self, client: Any, period: float = 0.2) -> None:
        self.client = client
        self.peak: dict[str, int] = {}
        self.spilled: dict[str, int] = {}
        super().__init__(period)

    def poll(self) -> None:
        try:
            for address, worker in self.client.scheduler_info(n_workers=-1)["workers"].items():
                metrics = worker.get("metrics", {})
                self.peak[address] = max(self.peak.get(address, 0), int(metrics.get("memory", 0)))
                spilled = metrics.get("spilled_bytes", {})
                self.spilled[address] = max(self.spilled.get(address, 0), int(spilled.get("disk", 0)))
        except Exception:  # the scheduler is busy or shutting down: try again
            pass


class ProcessRssSampler(Poller):
    """Polls the RSS of this process's local worker processes directly (psutil), and keeps the peak.

    Finer than :class:`RssSampler`: the scheduler's metrics arrive with each heartbeat
    (about every 0.5 s for a small cluster), which can miss a short peak before a nanny
    kills its worker; this reads /proc every ``period`` seconds. Workers started later
    (a restarted one) are picked up as they appear, keyed by PID.
    """

    def __init__(self, period: float = 0.05) -> None:
        import psutil

        self._me = psutil.Process()
        self.peak: dict[int, int] = {}
        self._workers: list[Any] = []
        self._listed = 0.0
        super().__init__(period)

    def _list_workers(self) -> list[Any]:
        # LocalCluster's worker processes are spawned children; skip multiprocessing's helpers.
        return [p for p in self._me.children(recursive=True)
                if "spawn_main" in " ".join(p.cmdline()) and "resource_tracker" not in " ".join(p.cmdline())]

    def poll(self) -> None:
        try:
            if time.monotonic() - self._listed > 1.0:
                self._workers, self._listed = self._list_workers(), time.monotonic()
            for process in self._workers:
                self.peak[process.pid] = max(self.peak.get(process.pid, 0), process.memory_info().rss)
        except Exception:  # a worker exited between listing and reading: list them again
            self._listed = 0.0
