"""A worker process killed in the middle of a fit: the fit completes with the undisturbed result.

Dask recomputes what the dead worker held from the task graph (the interaction blocks
from the Parquet files, the factors of the current iteration from the previous ones), and
every random choice is seeded, so the result does not depend on where tasks ran.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from daskflow.cluster import connect


@pytest.fixture
def fresh_client() -> Iterator[Any]:
    """A cluster of its own: killing its workers must not disturb the shared one."""
    with connect("local", n_workers=2, threads_per_worker=1, memory_limit="1GiB",
                 dashboard_address=":0") as client:
        yield client


class _Trigger(logging.Handler):
    """Sets an event when the daskflow log says a given thing (e.g. an iteration finished)."""

    def __init__(self, needle: str) -> None:
        super().__init__()
        self.needle = needle
        self.hit = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.needle in record.getMessage():
            self.hit.set()


def fit_killing_a_worker(client: Any, fit: Callable[[], Any], needle: str | None, *,
                         event: threading.Event | None = None, delay: float = 0.0) -> Any:
    """Run ``fit`` in a thread; SIGKILL one worker process when the log shows ``needle``
    (or ``delay`` seconds after ``event`` is set, for fits that do not log iterations)."""
    trigger = _Trigger(needle or "\0never")
    if event is not None:
        trigger.hit = event
    logger = logging.getLogger("daskflow")
    previous = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(trigger)
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["model"] = fit()
        except BaseException as exc:  # re-raised in the test's thread
            result["error"] = exc

    thread = threading.Thread(target=target)
    try:
        thread.start()
        assert trigger.hit.wait(120), f"the fit never logged {needle!r}"
        time.sleep(delay)
        assert thread.is_alive(), "the fit ended before a worker could be killed"
        victim = sorted(client.run(os.getpid).items())[0][1]
        os.kill(victim, signal.SIGKILL)
        thread.join(300)
    finally:
        logger.removeHandler(trigger)
        logger.setLevel(previous)
    assert not thread.is_alive(), "the fit hung after the worker died"
    if "error" in result:
        raise result["error"]
    assert victim not in client.run(os.getpid).values(), "the worker was not replaced"
    return result["model"]


@pytest.mark.slow
def test_als_fit_survives_a_killed_worker(tiny_lake: Path, fresh_client: Any) -> None:
    from daskflow.features import build_interactions
    from daskflow.io import read_table
    from daskflow.models import ImplicitALS

    def matrix() -> Any:
        listens = read_table(str(tiny_lake / "listens"), columns=["user_id", "track_id", "ts"])
        return build_interactions(listens, user_col="user_id", item_col="track_id", block_size=60,
                                  client=fresh_client)

    params = {"n_factors": 32, "n_iter": 16, "random_state": 5, "regularization": 0.05}
    undisturbed = ImplicitALS(**params).fit(matrix(), client=fresh_client)
    survived = fit_killing_a_worker(
        fresh_client, lambda: ImplicitALS(**params).fit(matrix(), client=fresh_client),
        "ALS iteration 4/16")
    np.testing.assert_allclose(survived.user_factors_, undisturbed.user_factors_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(survived.item_factors_, undisturbed.item_factors_, rtol=1e-5, atol=1e-6)
    assert survived.loss_curve_ == pytest.approx(undisturbed.loss_curve_, rel=1e-5)


@pytest.mark.slow
def test_logistic_regression_fit_survives_a_killed_worker(fresh_client: Any) -> None:
    import dask.array as da

    from daskflow.models import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60_000, 20))
    y = (rng.random(60_000) < 1 / (1 + np.exp(-(X @ rng.normal(size=20) - 1)))).astype(int)

    def data() -> tuple[Any, Any]:
        # from_array keeps the blocks in the graph: a block lost with its worker is rebuilt from it.
        return da.from_array(X, chunks=(6_000, 20)), da.from_array(y, chunks=6_000)

    params = {"solver": "sgd", "step_size": 0.5, "mini_batch_fraction": 0.3, "max_iter": 120,
              "tol": 0.0, "random_state": 7}
    undisturbed = LogisticRegression(**params).fit(*data(), client=fresh_client)
    assert undisturbed.n_iter_ == 120

    model = LogisticRegression(**params)
    started = threading.Event()

    def fit() -> Any:
        started.set()
        return model.fit(*data(), client=fresh_client)

    survived = fit_killing_a_worker(fresh_client, fit, needle=None, event=started, delay=1.0)
    np.testing.assert_allclose(survived.coef_, undisturbed.coef_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(survived.intercept_, undisturbed.intercept_, rtol=1e-9, atol=1e-12)
    assert survived.loss_curve_ == pytest.approx(undisturbed.loss_curve_, rel=1e-9)
