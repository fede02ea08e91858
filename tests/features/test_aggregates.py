"""features.aggregates: every aggregate against plain pandas, point-in-time correctness, bad input.

Events are written as real Parquet files (several per log, so the task shuffle has several
partitions to combine), read back with :func:`daskflow.io.read_table`, and the aggregates
are built on the session's LocalCluster.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from daskflow._errors import DataError, SchemaError
from daskflow.features.tabular import AggregateSpec, EventLabel, build_aggregates
from daskflow.features.tabular import _aggregate_kernels as kernels
from daskflow.io import read_table

CUTOFF = pd.Timestamp("2026-01-29")
DAY = pd.Timedelta(days=1)
WINDOWS = ("7d", "36h", "all")
SPEC = AggregateSpec("ev", id="user_id", time="ts", windows=WINDOWS, sum=("ms",), mean=("ms",), min=("ms",),
                     max=("ms",), nunique=("track", "artist"), active_days=True, recency=True,
                     share=(("platform", ("mobile", "web")),), session_gap_minutes=30)


def _events(seed: int = 0, n: int = 600) -> pd.DataFrame:
    """Events of 12 users over 28 days, with the windows' boundaries hit exactly."""
    rng = np.random.default_rng(seed)
    users = [f"u{i:02d}" for i in range(12)]
    start = pd.Timestamp("2026-01-01")
    ts = start + pd.to_timedelta(rng.integers(0, 28 * 24 * 60, n), unit="min")
    frame = pd.DataFrame({"user_id": rng.choice(users[:10], n), "ts": ts,
                          "ms": rng.integers(1, 1000, n).astype(float),
                          "track": rng.choice(list("abcdefg"), n),
                          "artist": rng.choice(["x", "y", "z"], n),
                          "platform": rng.choice(["mobile", "web", "tv"], n)})
    frame.loc[::17, "ms"] = np.nan  # missing values: skipped by sum, mean, min, max
    edges = pd.DataFrame({  # exactly at cutoff - 7d (in the 7d window), - 36h, and just before the cutoff
        "user_id": ["u00", "u01", "u02", "u03"],
        "ts": [CUTOFF - 7 * DAY, CUTOFF - pd.Timedelta(hours=36), CUTOFF - pd.Timedelta(milliseconds=1),
               CUTOFF - 7 * DAY - pd.Timedelta(milliseconds=1)],
        "ms": [5.0, 6.0, 7.0, 8.0], "track": ["h"] * 4, "artist": ["w"] * 4, "platform": ["web"] * 4})
    frame = pd.concat([frame, edges], ignore_index=True)
    frame["ts"] = frame["ts"].astype("datetime64[ms]")
    return frame


def _late(n: int = 200) -> pd.DataFrame:
    """Events at and after the cutoff that would change every feature if they leaked."""
    rng = np.random.default_rng(1)
    ts = CUTOFF + pd.to_timedelta(rng.integers(0, 2 * 24 * 60, n), unit="min")
    ts = ts.insert(0, CUTOFF)  # exactly at the cutoff: excluded too
    users = [f"u{i:02d}" for i in range(12)]
    return pd.DataFrame({"user_id": rng.choice(users, n + 1), "ts": ts.astype("datetime64[ms]"),
                         "ms": np.full(n + 1, 1e9), "track": [f"late{i}" for i in range(n + 1)],
                         "artist": ["late"] * (n + 1), "platform": ["mobile"] * (n + 1)})


def _write(frame: pd.DataFrame, root: Path, parts: int = 3) -> Path:
    root.mkdir(parents=True)
    shuffled = frame.sample(frac=1, random_state=0).reset_index(drop=True)
    for k, rows in enumerate(np.array_split(np.arange(len(shuffled)), parts)):
        shuffled.iloc[rows].to_parquet(root / f"part-{k}.parquet", index=False)
    return root


def _users() -> pd.DataFrame:
    # u10 and u11 have no event before the cutoff; the table's order is not the events'.
    return pd.DataFrame({"user_id": [f"u{i:02d}" for i in (11, 3, 0, 7, 10, 1, 2, 4, 5, 6, 8, 9)],
                         "age": np.arange(12)})


def _reference(events: pd.DataFrame, users: pd.DataFrame) -> pd.DataFrame:
    """Every feature of SPEC by plain pandas, one user and window at a time."""
    before = events[events.ts < CUTOFF]
    first_event = events.ts.min()
    rows = []
    for user in users.user_id:
        mine = before[before.user_id == user]
        row: dict[str, object] = {"user_id": user}
        for window in WINDOWS:
            if window == "all":
                w = mine
            else:
                length = pd.Timedelta(days=int(window[:-1])) if window.endswith("d") else \
                    pd.Timedelta(hours=int(window[:-1]))
                w = mine[mine.ts >= CUTOFF - length]
            row[f"ev_count_{window}"] = len(w)
            row[f"ev_sum_ms_{window}"] = w.ms.sum()
            row[f"ev_mean_ms_{window}"] = w.ms.mean() if w.ms.notna().any() else 0.0
            row[f"ev_min_ms_{window}"] = w.ms.min() if w.ms.notna().any() else 0.0
            row[f"ev_max_ms_{window}"] = w.ms.max() if w.ms.notna().any() else 0.0
            row[f"ev_nunique_track_{window}"] = w.track.nunique()
            row[f"ev_nunique_artist_{window}"] = w.artist.nunique()
            row[f"ev_active_days_{window}"] = w.ts.dt.floor("D").nunique()
            times = w.ts.sort_values()
            row[f"ev_sessions_{window}"] = int((times.diff() > pd.Timedelta(minutes=30)).sum() + 1) \
                if len(times) else 0
            for value in ("mobile", "web"):
                row[f"ev_share_platform_{value}_{window}"] = (w.platform == value).mean() if len(w) else 0.0
        longest = (CUTOFF - first_event) / DAY
        row["ev_days_since_last"] = (CUTOFF - mine.ts.max()) / DAY if len(mine) else longest
        row["ev_days_since_first"] = (CUTOFF - mine.ts.min()) / DAY if len(mine) else longest
        rows.append(row)
    return pd.DataFrame(rows)


def _build(tmp_path: Path, events: pd.DataFrame, client: object, *, label: bool = True,
           conversions: pd.DataFrame | None = None, **options: object) -> pd.DataFrame:
    sources = {"ev": read_table(str(_write(events, tmp_path / "ev")))}
    if label:
        conversions = conversions if conversions is not None else pd.DataFrame(
            {"user_id": ["u01", "u02", "u03", "u04"],
             "ts": pd.to_datetime(["2026-01-28 23:00", "2026-01-29 00:00", "2026-02-04 23:59",
                                   "2026-02-05 00:00"]).astype("datetime64[ms]")})
        sources["conversions"] = read_table(str(_write(conversions, tmp_path / "conversions", parts=2)))
    result = build_aggregates(
        _users(), sources, id_column="user_id", specs=[options.pop("spec", SPEC)],  # type: ignore[list-item]
        cutoff=options.pop("cutoff", CUTOFF),
        label=EventLabel("conversions", "user_id", "ts", 7, "converted") if label else None,
        n_buckets=3, client=client, **options)  # type: ignore[arg-type]
    assert result.frame.npartitions == 3  # one per bucket
    frame = result.frame.compute()
    return frame.sort_values("user_id").reset_index(drop=True)


def test_every_aggregate_equals_plain_pandas(tmp_path: Path, client: object) -> None:
    events = _events()
    built = _build(tmp_path, events, client)
    expected = _reference(events, _users()).sort_values("user_id").reset_index(drop=True)
    assert list(built.columns) == ["user_id", "age", *SPEC.feature_names(), "converted"]
    pd.testing.assert_frame_equal(built[expected.columns], expected, check_dtype=False)
    for name in SPEC.feature_names():  # counts are integers; nothing is missing
        assert built[name].notna().all(), name
        if "_count_" in name or "_nunique_" in name or "_sessions_" in name or "_active_days_" in name:
            assert built[name].dtype == np.int64, name
    # The boundaries: an event at cutoff - 7d is in 7d, one a millisecond earlier is not.
    u00 = built.set_index("user_id")
    assert u00.loc["u00", "ev_nunique_artist_7d"] == expected.set_index("user_id").loc["u00",
                                                                                        "ev_nunique_artist_7d"]
    # The label: an event in [cutoff, cutoff + 7d); 23:00 the day before and exactly +7d are out.
    assert dict(zip(built.user_id, built.converted, strict=True)) == {
        u: int(u in ("u02", "u03")) for u in built.user_id}


def test_window_boundaries_inclusive_start_exclusive_end(tmp_path: Path, client: object) -> None:
    events = pd.DataFrame({"user_id": ["u00"] * 4,
                           "ts": [CUTOFF - 7 * DAY - pd.Timedelta(milliseconds=1), CUTOFF - 7 * DAY,
                                  CUTOFF - pd.Timedelta(milliseconds=1), CUTOFF],
                           "ms": [1.0, 10.0, 100.0, 1000.0], "track": list("abcd"), "artist": list("abcd"),
                           "platform": ["web"] * 4})
    events["ts"] = events["ts"].astype("datetime64[ms]")
    built = _build(tmp_path, events, client, label=False).set_index("user_id")
    assert built.loc["u00", "ev_sum_ms_7d"] == 110.0  # [cutoff - 7d, cutoff)
    assert built.loc["u00", "ev_sum_ms_all"] == 111.0  # the event at the cutoff never counts
    assert built.loc["u00", "ev_count_36h"] == 1
    assert built.loc["u00", "ev_sessions_all"] == 2  # the first two are 1 ms apart
    assert built.loc["u00", "ev_sessions_7d"] == 2 and built.loc["u00", "ev_count_7d"] == 2


def test_late_events_change_no_feature_but_the_label(tmp_path: Path, client: object) -> None:
    events = _events()
    before = _build(tmp_path / "a", events, client)
    after = _build(tmp_path / "b", pd.concat([events, _late()], ignore_index=True), client,
                   conversions=pd.DataFrame({"user_id": ["u05", "u06"], "ts": pd.to_datetime(
                       ["2026-01-29 00:00", "2026-02-04 12:00"]).astype("datetime64[ms]")}))
    features = SPEC.feature_names()
    pd.testing.assert_frame_equal(before[["user_id", *features]], after[["user_id", *features]])
    assert (before.converted != after.converted).any()  # the label window does see later events
    assert set(after.user_id[after.converted == 1]) == {"u05", "u06"}


def test_wrong_types_and_unknown_columns_are_named(tmp_path: Path, client: object) -> None:
    events = _events()
    with pytest.raises(SchemaError, match=r"aggregates.events.ev.sum names column\(s\) 'track' of type .* in "
                                          r"source 'ev': expected numbers or booleans"):
        _build(tmp_path / "a", events, client, spec=AggregateSpec("ev", "user_id", "ts", sum=("track",)))
    with pytest.raises(SchemaError, match=r"aggregates.events.ev.nunique names column\(s\) 'song', not in "
                                          r"source 'ev': found user_id"):
        _build(tmp_path / "b", events, client, spec=AggregateSpec("ev", "user_id", "ts", nunique=("song",)))
    with pytest.raises(SchemaError, match=r"aggregates.events.ev.time names column 'track' of type"):
        _build(tmp_path / "c", events, client, spec=AggregateSpec("ev", "user_id", "track"))


def test_cutoff_outside_the_data_and_unobserved_label_window(tmp_path: Path, client: object) -> None:
    events = _events()
    with pytest.raises(DataError, match=r"aggregates.cutoff 2025-12-01 00:00:00\+00:00 is outside the data "
                                        r"of source 'ev': column 'ts' .* holds 2026-01-01"):
        _build(tmp_path / "a", events, client, cutoff="2025-12-01", label=False)
    with pytest.raises(DataError,
                       match=r"outside the data .* at most 2026-01-29 \(the day after the last event read\)"):
        _build(tmp_path / "b", events, client, cutoff="2026-03-01", label=False)
    # The events end on 2026-01-28 and the conversions on 2026-02-05: a window to 2026-02-26 is not observed.
    with pytest.raises(DataError, match=r"the label window \[2026-01-29 00:00:00\+00:00, 2026-02-26.* is not "
                                        r"fully observed: the latest event of conversions, ev"):
        build_aggregates(_users(), {"ev": read_table(str(_write(events, tmp_path / "c"))),
                                    "conversions": events}, id_column="user_id", specs=[SPEC], cutoff=CUTOFF,
                         label=EventLabel("conversions", "user_id", "ts", 28), client=client)


def test_windows_must_be_durations() -> None:
    with pytest.raises(ValueError, match=r"'7days' is not a duration: expected <n>d \(days\), <n>h"):
        kernels.window_ms("7days")
    assert kernels.window_ms("12h") == 12 * 3_600_000 and kernels.window_ms("all") is None


def test_the_kernels_import_neither_dask_nor_distributed() -> None:
    tree = ast.parse(Path(kernels.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}
    assert not imported & {"dask", "distributed", "daskflow"}
