"""Writers that publish atomically: a failed job never leaves a half-written result."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import dask.dataframe as dd
import pandas as pd

from daskflow.io._fs import Publication, atomic_output, own_options

__all__ = ["write_parquet"]


def write_parquet(df: dd.DataFrame | pd.DataFrame, uri: str, *,
                  storage_options: Mapping[str, Any] | None = None,
                  partition_on: Sequence[str] | None = None, overwrite: bool = False,
                  compute: bool = True,
                  publish: Publication | contextlib.ExitStack | None = None) -> str:
    """Write a table as a Parquet directory and publish it only when every part is written.

    Parameters
    ----------
    df
        A Dask or pandas DataFrame.
    uri
        Destination directory (local path or fsspec URL). It must not exist unless
        ``overwrite`` is true; the old result is then replaced only after the new one is
        complete. It is claimed while the table is written, so a concurrent writer of the
        same ``uri`` fails at once, naming this one.
    partition_on
        Columns to hive-partition by.
    publish
        Defer publication: the table is written now, beside ``uri``, and appears at ``uri``
        when the caller commits. A :class:`~daskflow.io.Publication` (what an experiment run
        passes, having claimed ``uri`` when the run started) publishes it after the run's own
        directory, and all of its outputs or none; an ``ExitStack`` publishes it when the
        stack closes without an exception and removes it when it closes with one.

    Returns
    -------
    str
        ``uri``.
    """
    if isinstance(df, pd.DataFrame):
        df = dd.from_pandas(df, npartitions=1)
    options = own_options(storage_options)
    if isinstance(publish, Publication):
        pending = publish.output(uri, options, overwrite=overwrite)
        _to_parquet(df, pending.tmp_uri, options, partition_on, compute)
        publish.written(pending)
        return uri
    with contextlib.ExitStack() as output:
        tmp = output.enter_context(atomic_output(uri, options, overwrite=overwrite))
        _to_parquet(df, tmp, options, partition_on, compute)
        if publish is not None:  # written in full: the caller's stack now decides
            publish.push(output.pop_all())
    return uri


def _to_parquet(df: dd.DataFrame, target: str, storage_options: dict[str, Any],
                partition_on: Sequence[str] | None, compute: bool) -> None:
    df.to_parquet(target, storage_options=storage_options,
                  partition_on=list(partition_on) if partition_on else None,
                  write_index=False, compute=compute)
