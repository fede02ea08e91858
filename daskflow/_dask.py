"""Running task lists on the given client, or on dask's default scheduler without one."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import dask
from dask.base import tokenize

__all__ = ["persist", "compute", "named"]


def named(function: Callable[..., Any], prefix: str, *, pure: bool = False,
          nout: int | None = None) -> Callable[..., Any]:
    """``dask.delayed(function)`` whose tasks' keys start with ``prefix``.

    The dashboard groups tasks by key prefix (the words before the token): a prefix such
    as ``als-solve-users`` makes the task stream and progress pages name the pipeline's
    stage and kernel instead of the Python function. Words of ``prefix`` must be letters
    only (dask cuts the prefix at the first word holding a digit). Purity is kept as
    dask's own: a pure call's key is a hash of its arguments (equal calls share one
    task), an impure call's is unique.
    """
    delayed_function = dask.delayed(function, pure=pure, nout=nout)

    def call(*args: Any, **kwargs: Any) -> Any:
        token = tokenize(function, args, kwargs) if pure else uuid.uuid4().hex
        return delayed_function(*args, dask_key_name=f"{prefix}-{token}", **kwargs)

    return call


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
        # Progress on the terminal if it takes more than a moment (silent inside an ALS fit,
        # a tuning run or any other work that reports its own progress).
        from daskflow._progress import gather_with_progress

        done = gather_with_progress(client.compute(wanted), client=client)
    else:
        done = dask.compute(*wanted)
    for i, value in zip(lazy, done, strict=True):
        results[i] = value
    return results
