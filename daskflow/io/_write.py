"""Writers that publish atomically: a failed job never leaves a half-written result."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import dask.dataframe as dd
import pandas as pd

from daskflow.io._fs import atomic_output

__all__ = ["write_parquet"]


def write_parquet(df: dd.DataFrame | pd.DataFrame, uri: str, *,
                  storage_options: Mapping[str, Any] | None = None,
                  partition_on: Sequence[str] | None = None, overwrite: bool = False,
                  compute: bool = True, publish: contextlib.ExitStack | None = None) -> str:
    """Write a table as a Parquet directory and publish it only when every part is written.

    Parameters
    ----------
    df
        A Dask or pandas DataFrame.
    uri
        Destination directory (local path or fsspec URL). It must not exist unless
        ``overwrite`` is true; the old result is then replaced only after the new one is
        complete.
    partition_on
        Columns to hive-partition by.
    publish
        Defer publication to this stack: the table is written now, beside ``uri``, and
        appears at ``uri`` when the stack closes without an exception (or is removed when it
        closes with one). An experiment run passes its own stack, so results written to
        external URIs appear only if the whole run succeeds.

    Returns
    -------
    str
        ``uri``.
    """
    if isinstance(df, pd.DataFrame):
        df = dd.from_pandas(df, npartitions=1)
    with contextlib.ExitStack() as output:
        tmp = output.enter_context(atomic_output(uri, storage_options, overwrite=overwrite))
        df.to_parquet(tmp, storage_options=dict(storage_options or {}),
                      partition_on=list(partition_on) if partition_on else None,
                      write_index=False, compute=compute)
        if publish is not None:  # written in full: the caller's stack now decides
            publish.push(output.pop_all())
    return uri
