"""Bad input to content models and the cold-start evaluation (model.content, evaluate.cold_items).

Run through the CLI by :func:`tests.catalogue._harness.check_case`; docs/errors.md lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.catalogue._harness import Case, check_case


def _als_with(tracks: Path | str, *extra: str) -> list[str]:
    return ["model.name=als", "model.params.n_factors=4", "model.params.n_iter=2",
            f"data.sources.tracks.uri={tracks}", "model.content.source=tracks", "model.content.id=track_id",
            *extra]


def _tracks(change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path, Path], list[str]]:
    def make(lake: Path, work: Path) -> list[str]:
        frame = change(pd.read_parquet(lake / "tracks"))
        (work / "tracks").mkdir()
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), work / "tracks" / "part-0.parquet")
        return _als_with(work / "tracks")
    return make


def _differing_vectors(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame.at[3, "embedding"] = frame.at[3, "embedding"][:5]
    return frame


CASES: dict[str, Case] = {
    "item table without the content id column": Case(
        lambda lake, work: _als_with(lake / "tracks", "model.content.id=track_key"),
        ("model.content.id is 'track_key'", "data.sources.tracks", "found track_id, artist_id")),
    "duplicate ids in the item table": Case(
        _tracks(lambda f: pd.concat([f, f.iloc[:2]], ignore_index=True)),
        ("duplicate IDs in column 'track_id' (2 duplicated, e.g.", "model.content (data.sources.tracks)")),
    "content column of an unsupported type": Case(
        _tracks(lambda f: f.assign(released=pd.Timestamp("2020-01-01"))),
        ("content column 'released' has unsupported type datetime64", "model.content (data.sources.tracks)")),
    "content vectors of differing lengths": Case(
        _tracks(_differing_vectors),
        ("'embedding' holds vectors of differing lengths (16 and 5, e.g. item", "model.content")),
    "no warm items with content": Case(
        _tracks(lambda f: f.assign(track_id="x" + f.track_id)),
        ("no warm items with content", "column 'track_id' of data.sources.tracks", "'x",
         "features.interactions.item_col 'track_id'")),
    "cold_items of 1": Case(
        lambda lake, work: _als_with(lake / "tracks", "evaluate.cold_items=1"),
        ("evaluate.cold_items = 1 is invalid", "less than 1")),
    "cold_items of 0": Case(
        lambda lake, work: _als_with(lake / "tracks", "evaluate.cold_items=0"),
        ("evaluate.cold_items = 0 is invalid", "greater than 0")),
    "cold_items without content": Case(
        lambda lake, work: ["model.name=als", "evaluate.cold_items=0.2"],
        ("evaluate.cold_items is 0.2 but there is no model.content",)),
    "content source not in data.sources": Case(
        lambda lake, work: ["model.name=als", "model.content.source=songs"],
        ("model.content.source is 'songs' but data.sources has only",)),
    "content with a model other than als": Case(
        lambda lake, work: [f"data.sources.tracks.uri={lake / 'tracks'}", "model.content.source=tracks"],
        ("model.content needs model.name als (got 'popularity')",)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_content_input(name: str, lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                           monkeypatch: pytest.MonkeyPatch) -> None:
    check_case(CASES[name], lake, tmp_path, capsys, monkeypatch)
