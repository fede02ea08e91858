"""Per-entity anchors, the anchored label with censoring, the 'other' share, cutoff: latest, derived columns.

Real Parquet events on the session's LocalCluster, against plain pandas. The point-in-time
guarantee with anchors: with ``until`` no event at or after an entity's own anchor reaches its
features (events placed there with huge values would change every one of them), and an anchored
label counts events in [anchor, anchor + within) only, observed before the cutoff.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from daskflow._errors import DataError, ParameterError, SchemaError
from daskflow.features.tabular import AggregateSpec, Anchor, EventLabel, add_derived, build_aggregates
from daskflow.io import read_table
from tests.features.test_aggregates import CUTOFF, DAY, _events, _users, _write

MS = pd.Timedelta(milliseconds=1)


def _sources(tmp_path: Path, **frames: pd.DataFrame) -> dict[str, object]:
    return {name: read_table(str(_write(frame, tmp_path / name, parts=2 if len(frame) < 50 else 3)))
            for name, frame in frames.items()}


def _seen() -> pd.Series:
    """Each user's own cutoff (a column of the table): a few days before the global one, some missing."""
    users = _users()
    seen = pd.Series(CUTOFF - pd.to_timedelta(np.arange(len(users)) % 5, unit="D") - pd.Timedelta(hours=5),
                     index=users.user_id).astype("datetime64[ms]")
    seen.iloc[[1, 4]] = pd.NaT
    return seen


def test_until_anchor_is_each_entitys_cutoff(tmp_path: Path, client: object) -> None:
    events = _events()
    seen = _seen()
    # At and after each user's own cutoff (but before the global one): huge values that would leak.
    late = pd.DataFrame({"user_id": np.repeat(seen.dropna().index, 2),
                         "ts": np.concatenate([[t, t + pd.Timedelta(hours=2)] for t in seen.dropna()]),
                         "ms": 1e9, "track": "late", "artist": "late", "platform": "mobile"})
    late["ts"] = late["ts"].astype("datetime64[ms]")
    table = _users().assign(seen_at=seen.reindex(_users().user_id).to_numpy())
    spec = AggregateSpec("ev", id="user_id", time="ts", windows=("7d", "all"), sum=("ms",),
                         nunique=("track",), recency=True, session_gap_minutes=30, until="seen_at_anchor")
    result = build_aggregates(table, _sources(tmp_path, ev=pd.concat([events, late], ignore_index=True)),
                              id_column="user_id", specs=[spec], cutoff=CUTOFF,
                              anchors=[Anchor("seen_at_anchor", column="seen_at")], n_buckets=3,
                              client=client)
    got = result.frame.compute().set_index("user_id")
    everything = pd.concat([events, late], ignore_index=True)
    first_event = everything.ts.min()
    for user, own in seen.items():
        cutoff = CUTOFF if pd.isna(own) else min(own, CUTOFF)
        mine = everything[(everything.user_id == user) & (everything.ts < cutoff)]
        week = mine[mine.ts >= cutoff - 7 * DAY]
        row = got.loc[user]
        assert row["ev_count_all"] == len(mine) and row["ev_count_7d"] == len(week), user
        assert row["ev_sum_ms_all"] == pytest.approx(mine.ms.sum()) and row["ev_sum_ms_all"] < 1e9
        assert row["ev_nunique_track_all"] == mine.track.nunique()
        expected = (cutoff - mine.ts.max()) / DAY if len(mine) else (cutoff - first_event) / DAY
        assert row["ev_days_since_last"] == pytest.approx(expected, abs=1e-9), user
    assert (got["ev_count_all"] > 0).sum() >= 8


def test_since_anchor_from_another_aggregates_first_event(tmp_path: Path, client: object) -> None:
    events = _events()
    ads = pd.DataFrame({"user_id": ["u00", "u00", "u03", "u05", "u07"],
                        "ts": pd.to_datetime(["2026-01-10 13:00", "2026-01-05 08:00", "2026-01-20 00:00",
                                              "2026-01-28 23:59", "2026-01-30 00:00"])})
    ads["ts"] = ads["ts"].astype("datetime64[ms]")
    specs = [AggregateSpec("ev", id="user_id", time="ts"),
             AggregateSpec("ads", id="user_id", time="ts"),
             AggregateSpec("after", id="user_id", time="ts", since="first_ad_day")]
    result = build_aggregates(_users(), _sources(tmp_path, ev=events, ads=ads), id_column="user_id",
                              specs=specs, spec_sources=["ev", "ads", "ev"], cutoff=CUTOFF,
                              anchors=[Anchor("first_ad", events="ads"),
                                       Anchor("first_ad_day", events="ads", floor_day=True)],
                              n_buckets=3, client=client)
    got = result.frame.compute().set_index("user_id")
    assert result.anchor_columns == ["first_ad", "first_ad_day"]
    before = ads[ads.ts < CUTOFF]  # u07's ad is after the cutoff: no anchor
    first = before.groupby("user_id").ts.min()
    for user in got.index:
        if user in first.index:
            start = first[user].floor("D")
            expected = ((events.user_id == user) & (events.ts >= start) & (events.ts < CUTOFF)).sum()
            assert got.loc[user, "first_ad"] == first[user]
            assert got.loc[user, "first_ad_day"] == start
        else:
            expected = 0
            assert pd.isna(got.loc[user, "first_ad"])
        assert got.loc[user, "after_count_all"] == expected, user
    assert got.loc["u00", "after_count_all"] < got.loc["u00", "ev_count_all"]


def _anchored(tmp_path: Path, client: object, *, censor: bool, closed: str = "left") -> pd.DataFrame:
    ads = pd.DataFrame({"user_id": ["u00", "u01", "u02", "u03", "u04", "u05", "u09"],
                        "ts": pd.to_datetime(["2026-01-10 00:00"] * 5
                                             + ["2026-01-27 00:00", "2026-01-28 12:00"])})
    ads["ts"] = ads["ts"].astype("datetime64[ms]")
    anchor = pd.Timestamp("2026-01-10")
    conversions = pd.DataFrame({  # window [anchor, anchor + 2d)
        "user_id": ["u00", "u01", "u02", "u03", "u06", "u05"],
        "ts": [anchor, anchor + 2 * DAY - MS, anchor + 2 * DAY, anchor - MS, anchor,
               pd.Timestamp("2026-01-28")]})
    conversions["ts"] = conversions["ts"].astype("datetime64[ms]")
    result = build_aggregates(
        _users(), _sources(tmp_path, ev=_events(), ads=ads, conversions=conversions), id_column="user_id",
        specs=[AggregateSpec("ev", id="user_id", time="ts"), AggregateSpec("ads", id="user_id", time="ts")],
        spec_sources=["ev", "ads"], cutoff=CUTOFF, anchors=[Anchor("first_ad", events="ads")],
        label=EventLabel("conversions", "user_id", "ts", 2, "label", anchor="first_ad", censor=censor,
                         closed=closed),
        n_buckets=3, client=client)
    return result.frame.compute().set_index("user_id")


def test_anchored_label_window_and_censoring(tmp_path: Path, client: object) -> None:
    got = _anchored(tmp_path, client, censor=True)
    # At the anchor and 1 ms before the window's end count; at its end or before the anchor do not.
    assert got.loc[["u00", "u01", "u02", "u03", "u04"], "label"].tolist() == [1, 1, 0, 0, 0]
    # u05's window [01-27, 01-29) ends after the cutoff (01-29 excluded: ends at it, so observed)...
    assert not got.loc["u05", "label_censored"] and got.loc["u05", "label"] == 1
    # ... u06 converted without an ad: no anchor, no label, not censored.
    assert pd.isna(got.loc["u06", "label"]) and not got.loc["u06", "label_censored"]
    # u09's window [01-28 12:00, 01-30 12:00) ends after the cutoff: censored, no label.
    assert got.loc["u09", "label_censored"] and pd.isna(got.loc["u09", "label"])
    assert got["label"].isna().sum() == len(got) - 6 and got["label_censored"].sum() == 1


def test_anchored_label_closed_on_the_right(tmp_path: Path, client: object) -> None:
    got = _anchored(tmp_path, client, censor=True, closed="right")
    # (anchor, anchor + 2d]: at the anchor is out, at the window's end is in.
    assert got.loc[["u00", "u01", "u02", "u03", "u04"], "label"].tolist() == [0, 1, 1, 0, 0]
    # u05's window (01-27, 01-29] holds the cutoff's instant, which is not observed: censored.
    assert got.loc["u05", "label_censored"] and pd.isna(got.loc["u05", "label"])
    assert got["label_censored"].sum() == 2


def test_an_unobserved_window_is_censored_or_refused(tmp_path: Path, client: object) -> None:
    late = pd.DataFrame({"user_id": ["u00", "u08"], "ts": pd.to_datetime(["2026-01-10", "2026-01-28"])})
    late["ts"] = late["ts"].astype("datetime64[ms]")
    specs = [AggregateSpec("ads", id="user_id", time="ts")]
    label = EventLabel("ads", "user_id", "ts", 2, "label", anchor="first_ad")
    sources = _sources(tmp_path, ads=late)
    with pytest.raises(DataError, match=r"label window of 1 entit.*not fully observed.*censor: true"):
        build_aggregates(_users(), sources, id_column="user_id", specs=specs, cutoff=CUTOFF, label=label,
                         anchors=[Anchor("first_ad", events="ads")], client=client)
    censored = build_aggregates(_users(), sources, id_column="user_id", specs=specs, cutoff=CUTOFF,
                                label=EventLabel("ads", "user_id", "ts", 2, "label", anchor="first_ad",
                                                 censor=True),
                                anchors=[Anchor("first_ad", events="ads")], client=client).frame.compute()
    censored = censored.set_index("user_id")
    assert censored.loc["u08", "label_censored"] and pd.isna(censored.loc["u08", "label"])
    assert not censored.loc["u00", "label_censored"] and censored.loc["u00", "label"] == 1


def test_bad_anchors_are_named(tmp_path: Path, client: object) -> None:
    sources = _sources(tmp_path, ev=_events())
    spec = AggregateSpec("ev", id="user_id", time="ts", until="nowhere")
    with pytest.raises(ParameterError, match=r"aggregates\.events\.ev\.until is 'nowhere', not an anchor"):
        build_aggregates(_users(), sources, id_column="user_id", specs=[spec], cutoff=CUTOFF, client=client)
    with pytest.raises(SchemaError, match=r"anchors\.a\.column is 'age': expected a timestamp column"):
        build_aggregates(_users(), sources, id_column="user_id", specs=[AggregateSpec("ev", id="user_id",
                                                                                      time="ts")],
                         cutoff=CUTOFF, anchors=[Anchor("a", column="age")], client=client)
    with pytest.raises(ParameterError, match=r"anchors\.a\.events is 'ads', not an entry"):
        build_aggregates(_users(), sources, id_column="user_id", specs=[AggregateSpec("ev", id="user_id",
                                                                                      time="ts")],
                         cutoff=CUTOFF, anchors=[Anchor("a", events="ads")], client=client)


def test_other_share_and_the_latest_cutoff(tmp_path: Path, client: object) -> None:
    events = _events()
    spec = AggregateSpec("ev", id="user_id", time="ts", share=(("platform", ("mobile", "web")),),
                         share_other=True)
    result = build_aggregates(_users(), _sources(tmp_path, ev=events), id_column="user_id", specs=[spec],
                              cutoff="latest", client=client)
    assert result.cutoff == pd.Timestamp(events.ts.max(), tz="UTC") + MS
    got = result.frame.compute().set_index("user_id")
    for user in got.index:
        mine = events[events.user_id == user]
        assert got.loc[user, "ev_count_all"] == len(mine)  # every event observed, the latest included
        other = (~mine.platform.isin(["mobile", "web"])).mean() if len(mine) else 0.0
        assert got.loc[user, "ev_share_platform_other_all"] == pytest.approx(other, abs=1e-15)
    assert result.constants["cutoff_day"] == (events.ts.max() - pd.Timestamp(0)) // DAY


def test_derived_columns_compute_and_refuse_what_is_not_allowed() -> None:
    frame = pd.DataFrame({"a": [4.0, 0.0, np.nan], "b": [2.0, 0.0, 1.0], "label": [1, 0, 1],
                          "t": pd.to_datetime(["1970-01-03 05:00", None, "1970-01-01 00:00"])})
    out = add_derived(frame, {"r": "ratio(a, b)", "w": "where(a > 1, a - b, -1)", "d": "day(t) + 1",
                              "f": "fill(a, 7) * 2", "big": "r >= 2 and not b == 0", "m": "max(a, b)"},
                      constants={"k": 3.0})
    np.testing.assert_array_equal(out["r"], [2.0, 0.0, np.nan])  # 0 for a zero divisor; missing stays missing
    np.testing.assert_array_equal(out["w"], [2.0, -1.0, -1.0])
    np.testing.assert_array_equal(out["d"], [3.0, np.nan, 1.0])
    np.testing.assert_array_equal(out["f"], [8.0, 0.0, 14.0])
    assert out["big"].tolist() == [True, False, False] and out["big"].dtype == bool
    assert out["m"].iloc[0] == 4.0 and np.isnan(out["m"].iloc[2])
    for text, error in (("__import__('os').system('true')", r"system\(\) is not a function"),
                        ("a.real", "Attribute"), ("a[0]", "Subscript"), ("lambda: 1", "Lambda"),
                        ("ratio(a)", r"ratio\(\) takes 2"), ("'text'", "is not a number"),
                        ("a if b else 1", "IfExp"), ("0 < a < 1", "one comparison"),
                        ("a +", "not an expression")):
        with pytest.raises(ParameterError, match=r"features\.derived\.x: .*" + error):
            add_derived(frame, {"x": text})
    with pytest.raises(SchemaError, match=r"features\.derived\.x .* reads 'c', not a column.*found a, b"):
        add_derived(frame, {"x": "a + c"})
    with pytest.raises(SchemaError, match=r"reads 'label', the label"):
        add_derived(frame, {"x": "label * 2"}, forbidden=["label"])
    with pytest.raises(SchemaError, match=r"'a' is already a column"):
        add_derived(frame, {"a": "b"})
