"""How every stage reads ``data.sources``: one function, imported by the stages and the preflight.

The preflight opens each source exactly as the stage that reads it will (same columns, same
footer checks), so ``validate`` and ``run`` report a missing column or a bad schema alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from daskflow.config import Config
from daskflow.io import read_table

if TYPE_CHECKING:
    import dask.dataframe as dd

__all__ = ["interaction_columns", "read_source"]


def read_source(config: Config, name: str, columns: list[str] | None) -> dd.DataFrame:
    """``data.sources.<name>`` as the stages read it: lazily, its footers checked.

    ``columns``: the columns the stage needs (``None``: all); a source that declares its
    own ``columns`` is read with those.
    """
    source = config.data.sources[name]
    wanted = list(source.columns) if source.columns is not None else columns
    return read_table(source.uri, format=source.format, columns=wanted, filters=source.filters,
                      storage_options=source.storage_options, schema=source.required_schema,
                      name=name)


def interaction_columns(config: Config) -> list[str]:
    """The columns the interactions (and kpis) stage reads from its source."""
    spec = config.features.interactions
    return [spec.user_col, spec.item_col] + ([spec.weight] if spec.weight != "count" else []) + \
        [spec.time_col]
