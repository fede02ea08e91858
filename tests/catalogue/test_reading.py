"""Reading exactly the data that is there: links, typed partitions, blank IDs, odd columns.

The catalogue cases run through the CLI (:func:`tests.catalogue._harness.check_case`);
docs/errors.md lists them. The integrity tests after them check what a run that succeeds
counts: every file once whatever links point at it, and the same rows in every stage.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
import yaml

from daskflow import DataError
from daskflow.analytics import log_kpis
from daskflow.cli import main
from daskflow.features import build_interactions
from daskflow.io import read_table
from tests.catalogue._harness import (
    Case,
    base_config,
    check_case,
    copy_listens,
    listens_rows,
    uri,
    write_day,
)

COLUMNS = ["user_id", "track_id", "ms_played", "ts"]


def corrupt_page(file: Path, column: str) -> None:
    """Flip bytes of the first data page header of ``column``: the footer stays readable."""
    metadata = pq.ParquetFile(file).metadata.row_group(0)
    chunk = next(metadata.column(i) for i in range(metadata.num_columns)
                 if metadata.column(i).path_in_schema == column)
    data = bytearray(file.read_bytes())
    for i in range(chunk.data_page_offset, chunk.data_page_offset + 16):
        data[i] ^= 0xFF
    file.write_bytes(bytes(data))


def _with_file_config(lake: Path, work: Path, edit: Callable[[dict], None]) -> list[str]:
    """Write the case's config file itself (so errors can name its line)."""
    config = base_config(lake, work / "out")
    edit(config)
    path = work / "own.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return ["--argv", str(path)]


def _dangling_link(lake: Path, work: Path) -> list[str]:
    listens = copy_listens(lake, work)
    os.symlink(work / "gone", listens / "date=2026-01-06")
    return uri(listens)


def _self_link(lake: Path, work: Path) -> list[str]:
    listens = copy_listens(lake, work)
    os.symlink("me.parquet", listens / "date=2026-01-01" / "me.parquet")
    return uri(listens)


def _garbage_date(lake: Path, work: Path) -> list[str]:
    listens = copy_listens(lake, work)
    write_day(listens, "garbage", listens_rows(["u1", "u2"], [1, 2]))
    return uri(listens) + ["data.sources.listens.filters=[[date, '>=', '2026-01-01']]"]


def _integer_partition(lake: Path, work: Path) -> list[str]:
    root = work / "years"
    for year in ("2025", "2026", "twenty"):
        (root / f"year={year}").mkdir(parents=True)
        pq.write_table(listens_rows([f"u{year}", "u2"], [1, 2]), root / f"year={year}" / "p.parquet")
    return uri(root) + ["data.sources.listens.schema={user_id: string, year: integer}"]


def _blank_ids(column: str, value: str, stage: str) -> Callable[[Path, Path], list[str]]:
    def make(lake: Path, work: Path) -> list[str]:
        listens = copy_listens(lake, work)
        table = listens_rows(["u1", "u2", "u3"], [1, 2, 3])
        ids = table.column(column).to_pylist()
        ids[0] = ids[2] = value
        table = table.set_column(table.schema.get_field_index(column), column, pa.array(ids))
        write_day(listens, "2026-01-02", table)
        return uri(listens) + [f"experiment.stages=[{stage}]"]
    return make


def _string_times(stage: str) -> Callable[[Path, Path], list[str]]:
    def make(lake: Path, work: Path) -> list[str]:
        root = work / "text-times"
        table = listens_rows(["u1", "u2", "u3"], [1, 2, 3])
        table = table.set_column(table.schema.get_field_index("ts"), "ts",
                                 pa.array(["2026-01-01 10:00", "2026-01-01 11:00", "2026-01-02 09:30"]))
        write_day(root, "2026-01-01", table)
        return uri(root) + ["data.sources.listens.schema={}", f"experiment.stages=[{stage}]"]
    return make


def _corrupt_data_page(stage: str) -> Callable[[Path, Path], list[str]]:
    def make(lake: Path, work: Path) -> list[str]:
        listens = copy_listens(lake, work)
        corrupt_page(sorted((listens / "date=2026-01-03").glob("*.parquet"))[1], "user_id")
        return uri(listens) + [f"experiment.stages=[{stage}]"]
    return make


def _scalar_in_filter(lake: Path, work: Path) -> list[str]:
    def edit(config: dict) -> None:
        config["data"]["sources"]["listens"]["filters"] = [["country", "in", "SE"]]
    return _with_file_config(lake, work, edit)


def _other_column_names(lake: Path, work: Path) -> list[str]:
    listens = copy_listens(lake, work)
    table = listens_rows(["u1", "u2"], [1, 2]).rename_columns(
        ["uid", "tid", "artist_id", "ms_played", "ts", "platform", "country"])
    write_day(listens, "2026-01-02", table, name="renamed.parquet")
    return uri(listens)


def _string_weights(lake: Path, work: Path) -> list[str]:
    root = work / "text-weights"
    write_day(root, "2026-01-01", listens_rows(["u1", "u2", "u3"], pa.array(["10", "20", "x"])))
    return uri(root) + ["data.sources.listens.schema={}", "features.interactions.weight=ms_played"]


def _static(*arguments: str) -> Callable[[Path, Path], list[str]]:
    return lambda lake, work: list(arguments)


def _orc_files(lake: Path, work: Path) -> list[str]:
    """The listens rewritten as ORC (same directories), read with the default format: parquet."""
    import pyarrow.orc as orc

    root = work / "listens-orc"
    for file in sorted((lake / "listens").rglob("*.parquet")):
        target = root / file.parent.name / file.with_suffix(".orc").name
        target.parent.mkdir(parents=True, exist_ok=True)
        orc.write_table(pq.read_table(file, partitioning=None), target)
    return uri(root)


CASES: dict[str, Case] = {
    "ORC files read as Parquet": Case(_orc_files, (
        "part-0.orc", "is an ORC file, read as parquet", "set format: orc on this source",
        "data.format: orc")),
    "dangling link in a source": Case(_dangling_link, ("link ", "date=2026-01-06", "which does not exist",
                                                       "remove the link")),
    "link to itself in a source": Case(_self_link, ("me.parquet", "cannot be followed")),
    "date partition that is not a date": Case(_garbage_date, (
        "hive partition date=garbage", "directory ", "is not a date written YYYY-MM-DD",
        "declare schema: {date: string}")),
    "integer partition that is not an integer": Case(_integer_partition, (
        "hive partition year=twenty", "is not an integer", "declared integer")),
    "date filter on a value that is not a date": Case(
        _static("data.sources.listens.filters=[[date, '>=', soon]]"),
        ("'soon' is not a date written YYYY-MM-DD", "hive partition column 'date'")),
    "empty user IDs": Case(_blank_ids("user_id", "", "interactions"), (
        "column 'user_id' has 2 empty or whitespace-only IDs", "track_id='t0'", "extra.parquet",
        "features.interactions.allow_empty_ids")),
    "whitespace-only item IDs": Case(_blank_ids("track_id", "   ", "interactions"), (
        "column 'track_id' has 2 empty or whitespace-only IDs", "user_id='u1'")),
    "empty user IDs in the kpis stage": Case(_blank_ids("user_id", " ", "kpis"), (
        "column 'user_id' has 2 empty or whitespace-only IDs", "allow_empty_ids")),
    "block_size making too many blocks": Case(_static("features.interactions.block_size=1"), (
        "block_size 1 makes ", " user blocks x ", "expected at most 10000 blocks a side and 20000 pieces",
        "Set features.interactions.block_size to")),
    "string timestamps in the kpis stage": Case(_string_times("kpis"), (
        "time column 'ts' is a", "expected timestamps", "schema: {ts: timestamp}")),
    "string timestamps in the interactions stage": Case(_string_times("interactions"), (
        "time column 'ts' is a", "expected timestamps")),
    "corrupt data page in the kpis stage": Case(_corrupt_data_page("kpis"), (
        "date=2026-01-03/part-1.parquet", "cannot be read", "its footer is fine but its data is not")),
    "corrupt data page in the interactions stage": Case(_corrupt_data_page("interactions"), (
        "date=2026-01-03/part-1.parquet", "cannot be read", "its footer is fine but its data is not")),
    "in filter with a single value": Case(_scalar_in_filter, (
        "data.sources.listens.filters", "line ", "'in' takes a list of values")),
    "weight equal to the time column": Case(_static("features.interactions.weight=ts"), (
        "features.interactions.weight and features.interactions.time_col are both 'ts'",)),
    "a file with other column names": Case(_other_column_names, (
        "column 'user_id' is missing from file", "renamed.parquet", "its columns: artist_id", "uid")),
    "string weight column": Case(_string_weights, (
        "weight column 'ms_played' is a", "expected numeric")),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exits_2_with_one_actionable_message(name: str, lake: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    check_case(CASES[name], lake, tmp_path, capsys, monkeypatch)


# -- what a run that succeeds counts ----------------------------------------------------


def truth(listens: Path) -> tuple[int, int]:
    """Rows and distinct users of the real files (no links), by plain pyarrow."""
    table = pads.dataset(str(listens), format="parquet", partitioning="hive").to_table()
    return table.num_rows, len(set(table.column("user_id").to_pylist()))


def linked_listens(lake: Path, work: Path) -> Path:
    """The lake's listens with a loop, a second name for a sibling day and a linked file."""
    listens = copy_listens(lake, work)
    os.symlink(".", listens / "date=2026-01-02" / "loop")
    os.symlink("../date=2026-01-01", listens / "date=2026-01-03" / "again")
    first = sorted((listens / "date=2026-01-04").glob("*.parquet"))[0]
    os.symlink(first.name, listens / "date=2026-01-04" / "copy.parquet")
    return listens


def run(config: dict, work: Path, *overrides: str) -> dict:
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["-q", "run", str(path), "output.run_id=r", *overrides]) == 0
    return json.loads((Path(config["output"]["dir"]) / "bad" / "r" / "metrics.json").read_text())


def test_links_count_every_file_once_in_every_stage(lake: Path, tmp_path: Path) -> None:
    rows, users = truth(lake / "listens")
    listens = linked_listens(lake, tmp_path)
    config = base_config(lake, tmp_path / "out")
    metrics = run(config, tmp_path, f"data.sources.listens.uri={listens}",
                  "experiment.stages=[kpis,interactions,train]")
    assert metrics["data"]["rows"] == rows
    assert metrics["data"]["users"] == metrics["interactions"]["users"] == users
    # The Arrow ingest path and dask's read count the same rows, each once.
    frame = read_table(str(listens), columns=COLUMNS)
    matrix = build_interactions(frame, block_size=97)
    assert matrix.to_scipy().sum() == rows
    assert len(frame) == rows


def test_the_garbage_partition_is_refused_before_anything_is_counted(lake: Path, tmp_path: Path) -> None:
    listens = copy_listens(lake, tmp_path)
    write_day(listens, "garbage", listens_rows(["u1", "u2"], [1, 2]))
    with pytest.raises(DataError, match=r"hive partition date=garbage .*\(directory .*/date=garbage\)"):
        read_table(str(listens), filters=[("date", ">=", "2026-01-01")])
    # Declared text, it is text: read as the user asked, and a filter compares it as text.
    frame = read_table(str(listens), filters=[("date", ">=", "2026-01-01")], schema={"date": "string"})
    assert len(frame) == truth(lake / "listens")[0] + 2
    # Without the directory, typed filters select days as dates: a YAML date works as a string.
    shutil.rmtree(listens / "date=garbage")
    import datetime

    as_date = read_table(str(listens), filters=[("date", ">", datetime.date(2026, 1, 3))]).compute()
    as_text = read_table(str(listens), filters=[("date", ">", "2026-01-03")]).compute()
    assert len(as_date) == len(as_text) > 0
    assert set(as_date["date"].astype(str)) == {"2026-01-04", "2026-01-05"}


def test_kpis_and_interactions_agree_on_allowed_blank_ids(lake: Path, tmp_path: Path) -> None:
    listens = copy_listens(lake, tmp_path)
    write_day(listens, "2026-01-02", listens_rows(["", " ", "u1"], [1, 2, 3]))
    rows, users = truth(listens)
    frame = read_table(str(listens), columns=COLUMNS)
    kpis, _ = log_kpis(frame, allow_empty_ids=True)
    matrix = build_interactions(frame, allow_empty_ids=True)
    assert kpis["rows"] == matrix.to_scipy().sum() == rows
    assert kpis["users"] == matrix.n_users == users
    assert {"", " "} <= set(matrix.user_ids)
