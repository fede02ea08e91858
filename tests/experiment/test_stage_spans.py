"""Stage boundaries on the dashboard: each stage's tasks run in distributed's span daskflow-<stage>."""

from __future__ import annotations

import warnings
from typing import Any

import dask.dataframe as dd
import pandas as pd

from daskflow._dask import compute, named
from daskflow.experiment._runner import _stage_scope


def _span_names(dask_scheduler: Any) -> list[tuple[str, ...]]:
    return [span.name for span in dask_scheduler.extensions["spans"].spans.values()]


def test_a_stage_runs_its_tasks_in_its_span_and_frames_stay_quiet(client: Any) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _stage_scope("evaluate"):
            (total,) = compute([named(sum, "evaluate-ranking")([1, 2, 3])], client)
            # A DataFrame built in a stage: dask's query planner drops the span annotation,
            # and its warning about that must not reach the user once per frame.
            frame = dd.from_pandas(pd.DataFrame({"x": range(10)}), npartitions=2)
            (rows,) = compute([frame.x.sum()], client)
    assert (total, rows) == (6, 45)
    assert ("daskflow-evaluate",) in client.run_on_scheduler(_span_names)
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "annotations" in m.lower()], messages
