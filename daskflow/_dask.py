"""Running task lists on the given client, or on dask's default scheduler without one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dask

__all__ = ["persist", "compute"]


def persist(tasks: Sequence[Any], client: Any = None) -> list[Any]:
    """Persist Dask objects (on ``client`` when given); returns them in order."""
    if not tasks:
        return []
    if client is not None:
        return list(client.persist(list(tasks)))
    return list(dask.persist(*tasks))


def compute(tasks: Sequence[Any], client: Any = None) -> list[Any]:
    """Compute Dask objects (on ``client`` when given); returns the results in order.

    Values that are neither Dask collections nor containers (e.g. arrays already in
    memory) pass through; containers are computed as Dask computes them.
    """
    lazy = [i for i, task in enumerate(tasks)
            if dask.is_dask_collection(task) or isinstance(task, list | tuple | dict)]
    results = list(tasks)
    if not lazy:
        return results
    wanted = [tasks[i] for i in lazy]
    if client is not None:
        done = client.gather(client.compute(wanted))
    else:
        done = dask.compute(*wanted)
    for i, value in zip(lazy, done, strict=True):
        results[i] = value
    return results
