"""Peak worker memory and spilled bytes during a benchmark, polled through the scheduler."""

from __future__ import annotations

import threading
import time
from typing import Any

__all__ = ["RssSampler"]


class RssSampler:
    """Polls every worker's RSS (through the scheduler's heartbeat metrics) and keeps the peak."""

    def __init__(self, client: Any, period: float = 0.2) -> None:
        self.client, self.period = client, period
        self.peak: dict[str, int] = {}
        self.spilled: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for address, worker in self.client.scheduler_info(n_workers=-1)["workers"].items():
                    metrics = worker.get("metrics", {})
                    self.peak[address] = max(self.peak.get(address, 0), int(metrics.get("memory", 0)))
                    spilled = metrics.get("spilled_bytes", {})
                    self.spilled[address] = max(self.spilled.get(address, 0), int(spilled.get("disk", 0)))
            except Exception:  # the scheduler is busy or shutting down: try again
                pass
            time.sleep(self.period)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
