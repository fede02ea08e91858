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
    """Compute Dask objects (on ``client`` when given); returns the results in order."""
    if not tasks:
        return []
    if client is not None:
        return list(client.gather(client.compute(list(tasks))))
    return list(dask.compute(*tasks))
