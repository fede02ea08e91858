"""Conversion features: a hand-checked case, the planted truth, encoder, split, storage, errors."""

from __future__ import annotations

from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from daskflow import DataError, ParameterError, SchemaError
from daskflow.features import (
    ConversionEncoder,
    build_conversion_features,
    load_features,
    save_features,
    split_users,
)
from daskflow.features._conversion_blocks import listen_day_partials, unit_fraction
from daskflow.io import read_table
from daskflow.models import LogisticRegression
from daskflow.sample import Scale, generate_lake

TABLES = ("listens", "users", "ad_impressions", "conversions")


def read_lake(root: Path) -> list:
    fmt = "orc" if any(root.glob("users/*.orc")) else "parquet"
    return [read_table(str(root / name), format=fmt) for name in TABLES]


def local_scheduler() -> object:
    """Dask's threads, also when the session's cluster is the default client: the shuffle
    method must match (p2p needs workers)."""
    return dask.config.set({"scheduler": "threads", "dataframe.shuffle.method": "tasks"})


def by_user(frame) -> pd.DataFrame:
    frame = frame.compute() if hasattr(frame, "compute") else frame
    return frame.sort_values("user_id").reset_index(drop=True)


# -- a lake small enough to check by hand ----------------------------------------------

T = pd.Timestamp
END = "2026-01-10 23:59:59"


def write(path: Path, rows: list[tuple], columns: list[str], types: dict[str, pa.DataType]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows, columns=columns)
    pq.write_table(pa.Table.from_pandas(frame, schema=pa.schema([(c, types[c]) for c in columns]),
                                        preserve_index=False), path)


@pytest.fixture(scope="module")
def hand_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six users; u1's last session runs past midnight into the next day's file."""
    root = tmp_path_factory.mktemp("hand")
    ms = pa.timestamp("ms")
    listen_cols = ["user_id", "track_id", "artist_id", "ms_played", "ts", "platform", "country"]
    listen_types = dict(zip(listen_cols, [pa.string()] * 3 + [pa.int64(), ms] + [pa.string()] * 2))
    listens = {
        "2026-01-01": [("u1", "t1", "a1", 180_000, T("2026-01-01 10:00"), "mobile", "SE"),
                       ("u1", "t2", "a1", 240_000, T("2026-01-01 10:20"), "mobile", "SE"),  # 20 min: same
                       ("u1", "t1", "a1", 60_000, T("2026-01-01 11:00"), "desktop", "SE"),  # 40 min: new
                       ("u1", "t3", "a2", 120_000, T("2026-01-01 23:50"), "mobile", "SE")],
        "2026-01-02": [("u1", "t3", "a2", 300_000, T("2026-01-02 00:10"), "car", "SE")],  # joins 23:50
        "2026-01-03": [("u2", "t1", "a1", 200_000, T("2026-01-03 12:00"), "web", "US"),
                       ("u3", "t4", "a3", 100_000, T("2026-01-03 08:00"), "tablet", "GB"),
                       ("u3", "t4", "a3", 100_000, T("2026-01-03 08:30"), "tablet", "GB"),  # gap == 30 min
                       ("u3", "t5", "a3", 100_000, T("2026-01-03 09:00:00.001"), "tablet", "GB")],
        "2026-01-05": [("u4", "t1", "a1", 50_000, T("2026-01-05 18:00"), "mobile", "DE")],
        "2026-01-10": [("u5", "t2", "a1", 150_000, T("2026-01-10 23:00"), "mobile", "US")],
    }
    for date, rows in listens.items():
        write(root / "listens" / f"date={date}" / "part-0.parquet", rows, listen_cols, listen_types)
    ad_cols = ["user_id", "ad_id", "campaign", "placement", "ts"]
    ad_types = dict(zip(ad_cols, [pa.string()] * 4 + [ms]))
    ads = [("u1", "c1-0", "c1", "video", T("2026-01-01 09:00")),
           ("u1", "c2-0", "c2", "audio", T("2026-01-02 12:00")),
           ("u1", "c1-1", "c1", "video", T("2026-01-03 12:00")),
           ("u2", "c1-0", "c1", "display", T("2026-01-03 10:00")),
           ("u3", "c3-0", "c3", "banner", T("2026-01-02 08:00")),
           ("u5", "c1-0", "c1", "video", T("2026-01-08 00:00"))]
    write(root / "ad_impressions" / "part-0.parquet", ads, ad_cols, ad_types)
    conversions = [("u1", T("2026-01-08 09:00"), "premium"),          # first impression + 7 days exactly
                   ("u2", T("2026-01-10 10:00:00.001"), "premium"),   # 1 ms after the window
                   ("u3", T("2026-01-02 08:00"), "premium"),          # at the first impression itself
                   ("u5", T("2026-01-09 12:00"), "premium"),          # censored user, converted
                   ("u6", T("2026-01-05 12:00"), "premium"),          # never saw an ad
                   ("u4", T("2026-01-12 12:00"), "premium")]          # after the end of observation
    write(root / "conversions" / "part-0.parquet", conversions, ["user_id", "ts", "product"],
          {"user_id": pa.string(), "ts": ms, "product": pa.string()})
    users = [("u1", 30, "F", "SE", "free", "2025-12-01"), ("u2", 40, "M", "US", "free", "2026-01-02"),
             ("u3", 25, "X", "GB", "free", "2025-06-01"), ("u4", 50, "F", "DE", "premium", "2025-01-01"),
             ("u5", 35, "M", "US", "free", "2025-01-01"), ("u6", 60, "F", "FR", "free", "2025-01-01")]
    user_cols = ["user_id", "age", "gender", "country", "product", "signup_date"]
    write(root / "users" / "part-0.parquet", [(*u[:5], T(u[5]).date()) for u in users], user_cols,
          {**dict.fromkeys(user_cols, pa.string()), "age": pa.int64(), "signup_date": pa.date32()})
    return root


@pytest.fixture(scope="module")
def hand_features(hand_lake: Path) -> pd.DataFrame:
    features = build_conversion_features(*read_lake(hand_lake), end=END, split_out=2)
    return by_user(features).set_index("user_id")


def test_behaviour_features_by_hand(hand_features: pd.DataFrame) -> None:
    u1 = hand_features.loc["u1"]
    assert u1.n_listens == 5 and u1.listen_hours == pytest.approx(900_000 / 3_600_000)
    assert u1.sessions == 3  # 10:00-10:20, 11:00, 23:50-00:10 (across midnight and files)
    assert (u1.active_days, u1.days_observed, u1.active_share) == (2, 10, pytest.approx(0.2))
    assert u1.listens_per_active_day == 2.5
    assert (u1.distinct_tracks, u1.distinct_artists) == (3, 2)
    assert u1.recency_days == pytest.approx((T(END) - T("2026-01-02 00:10")) / pd.Timedelta(days=1))
    assert (u1.platform_share_mobile, u1.platform_share_desktop, u1.platform_share_other) == (0.6, 0.2, 0.2)
    assert hand_features.loc["u3", "sessions"] == 2  # a gap of exactly 30 min continues a session
    u2 = hand_features.loc["u2"]  # signed up on the second day of the logs
    assert (u2.days_observed, u2.active_share, u2.tenure_days) == (9, pytest.approx(1 / 9), 8)
    assert hand_features.loc["u1", "tenure_days"] == 40


def test_exposure_and_label_windows_by_hand(hand_features: pd.DataFrame) -> None:
    f = hand_features
    u1 = f.loc["u1"]
    assert (u1.impressions, u1.distinct_campaigns, u1.listens_since_first_impression) == (3, 2, 5)
    assert u1.ads_per_listen == pytest.approx(3 / 5)
    assert u1.placement_share_video == pytest.approx(2 / 3)
    assert u1.placement_share_audio == pytest.approx(1 / 3)
    assert u1.first_impression_ts == T("2026-01-01 09:00")
    since_first = (T(END) - T("2026-01-01 09:00")) / pd.Timedelta(days=1)
    assert u1.days_since_first_impression == pytest.approx(since_first)
    # u2's impression is at 10:00 but its day's listen at 12:00 counts; u3 listened only after.
    assert f.loc["u2", "listens_since_first_impression"] == 1
    assert f.loc["u3", "ads_per_listen"] == pytest.approx(1 / 3)
    # Window (first impression, + 7 days]: the end is in, the first impression itself is not.
    assert f["label"].to_dict() == {"u1": 1, "u2": 0, "u3": 0, "u4": 0, "u5": 1, "u6": 0}
    assert f.index[f["exposed"]].tolist() == ["u1", "u2", "u3", "u5"]
    assert f.index[f["censored"]].tolist() == ["u5"]  # 2026-01-08 + 7 days is after the end
    u6 = f.loc["u6"]  # no events: zeros, recency = the whole observation, no first impression
    assert (u6.n_listens, u6.sessions, u6.impressions, u6.ads_per_listen) == (0, 0, 0, 0.0)
    assert u6.recency_days == 10 and pd.isna(u6.first_impression_ts) and u6.days_since_first_impression == 0


def test_default_end_is_the_latest_event(hand_lake: Path) -> None:
    features = by_user(build_conversion_features(*read_lake(hand_lake))).set_index("user_id")
    # The latest event, u5's listen at 23:00, ends the observation (conversions do not count).
    assert features.loc["u5", "recency_days"] == 0
    latest = (T("2026-01-10 23:00") - T("2026-01-01 09:00")) / pd.Timedelta(days=1)
    assert features.loc["u1", "days_since_first_impression"] == pytest.approx(latest)
    assert features.index[features["censored"]].tolist() == ["u5"]


def test_listen_partials_kernel_alone() -> None:
    frame = pd.DataFrame({"user_id": ["b", "a", "a", "a"], "ts": pd.to_datetime(
        ["2026-01-01 10:00", "2026-01-01 10:00", "2026-01-01 11:00", "2026-01-02 00:00"]),
        "ms_played": [1, 2, 3, 4], "platform": ["web", "web", None, "mobile"]})
    parts = listen_day_partials(frame, platforms=("mobile", "web"), gap_ms=30 * 60_000, end_ms=None,
                                n_buckets=1).sort_values(["user_id", "day"], ignore_index=True)
    assert parts[["user_id", "n_listens", "ms_played", "sessions"]].values.tolist() == [
        ["a", 2, 5.0, 2], ["a", 1, 4.0, 1], ["b", 1, 1.0, 1]]
    assert parts["platform_other"].tolist() == [1, 0, 0]


# -- the planted truth ---------------------------------------------------------------------

#: 28 days so that most first impressions have a complete 7-day label window, and ~10
#: listens per active day so that the ad load (impressions per listen) is measured from
#: enough impressions; see docs/conversion_features.md for why the gap cannot be much
#: smaller at this size.
PLANTED = Scale(n_users=10_000, n_artists=300, n_tracks=2_000, n_days=28, n_genres=8,
                mean_listens_per_active_day=10.0, users_per_chunk=5_000)


def test_planted_truth_is_recovered(tmp_path: Path) -> None:
    """Issue 4's acceptance test: test AUC within 0.02 of the AUC of the true probabilities."""
    # Threads, not the session's cluster: this measures the features, not the shuffle
    # transport (p2p is slow for tables this small).
    with local_scheduler():
        generate_lake(str(tmp_path / "lake"), scale=PLANTED, seed=0)
        features = build_conversion_features(*read_lake(tmp_path / "lake"))
        train, test = split_users(features, seed=0)
        encoder = ConversionEncoder().fit(train)
        # daskflow's own estimator, on the Dask table (Newton, the default solver).
        model = LogisticRegression(C=1.0).fit(encoder.transform(train), train["label"])
        test = test.compute()
        predicted = model.predict_proba(encoder.transform(test))[:, 1]
        truth = read_table(str(tmp_path / "lake" / "truth" / "users"), columns=["user_id", "p_convert"])
        true_p = truth.compute().set_index("user_id")["p_convert"].loc[test["user_id"]]
    assert len(test) > 800 and test["label"].sum() > 150
    auc, true_auc = roc_auc_score(test["label"], predicted), roc_auc_score(test["label"], true_p)
    assert true_auc - auc <= 0.02, (auc, true_auc)


# -- equal results whatever the format, scheduler or partitioning ---------------------------


def test_parquet_and_orc_lakes_give_equal_features(tiny_lake: Path, tiny_orc_lake: Path) -> None:
    parquet = by_user(build_conversion_features(*read_lake(tiny_lake), window_days=1))
    orc = by_user(build_conversion_features(*read_lake(tiny_orc_lake), window_days=1))
    pd.testing.assert_frame_equal(parquet, orc)
    assert len(parquet) == 300 and parquet["exposed"].any() and parquet["label"].any()


@pytest.mark.slow  # ~10 s: the first p2p shuffles on fresh workers
def test_cluster_equals_default_scheduler_and_split_out(tiny_lake: Path, client: object) -> None:
    on_cluster = by_user(build_conversion_features(*read_lake(tiny_lake), window_days=1, client=client))
    with local_scheduler():
        local = build_conversion_features(*read_lake(tiny_lake), window_days=1, split_out=5)
        assert local.npartitions == 5
        pd.testing.assert_frame_equal(on_cluster, by_user(local))


@pytest.fixture(scope="module")
def tiny_features(tiny_lake: Path) -> object:
    with local_scheduler():
        return build_conversion_features(*read_lake(tiny_lake), window_days=1)


# -- encoder -------------------------------------------------------------------------------


def test_encoder_output_shape_names_and_values(tiny_features: object) -> None:
    with local_scheduler():
        train, _ = split_users(tiny_features)
        encoder = ConversionEncoder().fit(train)
        X = encoder.transform(train)
        names = encoder.get_feature_names_out()
        assert isinstance(X, da.Array) and X.dtype == np.float64 and not np.isnan(X.shape[0])
        assert all(not np.isnan(c) for c in X.chunks[0]) and X.shape[1] == len(names)
        values = X.compute()
        local = train.compute()
        assert values.shape[0] == len(local) and np.isfinite(values).all()
        np.testing.assert_allclose(encoder.transform(local), values)
        # Fitted on pandas, the same encoding.
        np.testing.assert_allclose(ConversionEncoder().fit(local).transform(local), values, atol=1e-9)
    assert "log_ads_per_listen" in names and "log1p_n_listens" in names and "gender_F" in names
    assert not {"label", "censored", "exposed", "user_id"} & set(names)
    scaled = values[:, [i for i, n in enumerate(names) if n == "age"][0]]
    assert abs(scaled.mean()) < 1e-9 and scaled.std() == pytest.approx(1.0)


def test_encoder_unseen_and_missing_values(tiny_features: object) -> None:
    local = tiny_features.compute()
    encoder = ConversionEncoder().fit(local)
    odd = local.head(2).copy()
    odd["country"] = pd.array(["ZZ", None], dtype="string")
    odd["age"] = np.nan
    X = pd.DataFrame(encoder.transform(odd), columns=encoder.get_feature_names_out())
    assert (X.filter(like="country_") == 0).all().all() and (X["age"] == 0).all()
    assert clone(encoder).get_params() == encoder.get_params()


def test_encoder_errors(tiny_features: object) -> None:
    local = tiny_features.compute()
    with pytest.raises(NotFittedError):
        ConversionEncoder().transform(local)
    with pytest.raises(ParameterError, match=r"prior_events=0 is not a positive number"):
        ConversionEncoder(prior_events=0).fit(local)
    with pytest.raises(SchemaError, match=r"column\(s\) 'nope' needed by ConversionEncoder are not in"):
        ConversionEncoder(numeric_columns=["age", "nope"]).fit(local)
    encoder = ConversionEncoder().fit(local)
    with pytest.raises(SchemaError, match=r"column\(s\) 'age' used in fit are missing"):
        encoder.transform(local.drop(columns="age"))
    assert encoder.transform(local.drop(columns=["label", "censored"])).shape[0] == len(local)


# -- split ---------------------------------------------------------------------------------


def test_split_by_user_is_deterministic_and_disjoint(tiny_features: object) -> None:
    with local_scheduler():
        train, test = (by_user(f) for f in split_users(tiny_features, test_size=0.3, seed=3))
        one_partition = tiny_features.repartition(npartitions=1)
        again = [by_user(f) for f in split_users(one_partition, test_size=0.3, seed=3)]
        other = by_user(split_users(tiny_features, test_size=0.3, seed=4)[1])
    local = tiny_features.compute()
    population = set(local.user_id[local.exposed & ~local.censored])
    assert set(train.user_id).isdisjoint(test.user_id)
    assert set(train.user_id) | set(test.user_id) == population
    pd.testing.assert_frame_equal(train, again[0])
    pd.testing.assert_frame_equal(test, again[1])
    assert set(other.user_id) != set(test.user_id)
    assert 0.1 < len(test) / len(population) < 0.5
    fractions = unit_fraction(pd.Series(["u1", "u2"]), seed=3)
    assert ((fractions >= 0) & (fractions < 1)).all()
    np.testing.assert_array_equal(fractions, unit_fraction(pd.Series(["u1", "u2"]), seed=3))


def test_split_by_time(tiny_features: object) -> None:
    local = tiny_features.compute()
    for frame in (local, tiny_features):
        train, test = (by_user(f) for f in split_users(frame, test_size=0.25, by="time"))
        assert len(train) and len(test)
        assert train.first_impression_ts.max() <= test.first_impression_ts.min()
        assert not (train.censored.any() or test.censored.any()) and train.exposed.all()


def test_split_errors(tiny_features: object) -> None:
    with pytest.raises(ParameterError, match=r"by='random' is not a split: expected 'user' or 'time'"):
        split_users(tiny_features, by="random")
    with pytest.raises(ParameterError, match=r"test_size=1.5 is not a fraction"):
        split_users(tiny_features, test_size=1.5)
    with pytest.raises(SchemaError, match=r"split_users needs column\(s\) 'censored'"):
        split_users(tiny_features.drop(columns="censored"))


# -- storage -------------------------------------------------------------------------------


def test_save_and_load_round_trip(tiny_features: object, tmp_path: Path) -> None:
    uri = str(tmp_path / "features")
    with local_scheduler():
        assert save_features(tiny_features, uri) == uri
        assert (tmp_path / "features" / "_SUCCESS").exists()
        pd.testing.assert_frame_equal(by_user(load_features(uri)), by_user(tiny_features), check_dtype=False)
    with pytest.raises(DataError, match=r"no saved conversion features at"):
        load_features(str(tmp_path / "missing"))
    with pytest.raises(SchemaError, match=r"save_features got a table without 'user_id' and 'label'"):
        save_features(pd.DataFrame({"x": [1]}), str(tmp_path / "other"))


# -- input errors --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hand_tables(hand_lake: Path) -> dict[str, pd.DataFrame]:
    return {name: frame.compute() for name, frame in zip(TABLES, read_lake(hand_lake))}


def build(tables: dict[str, pd.DataFrame], **kwargs: object) -> object:
    return build_conversion_features(*(tables[name] for name in TABLES), **kwargs)


@pytest.mark.parametrize(("table", "change", "error", "message"), [
    ("listens", lambda f: f.drop(columns="platform"), SchemaError,
     r"the listens table lacks column\(s\) 'platform': expected user_id, track_id"),
    ("listens", lambda f: f.assign(ts="2026-01-01"), SchemaError,
     r"column 'ts' of the listens table has type .*: expected a timestamp"),
    ("users", lambda f: f.assign(age="old"), SchemaError, r"column 'age' of the users table has type"),
    ("users", lambda f: f.iloc[:0], DataError, r"the users table is empty"),
    ("ad_impressions", lambda f: f.iloc[:0], DataError, r"no user saw a house ad by end="),
    ("users", lambda f: f[f.user_id != "u2"], DataError,
     r"the listens table has user IDs that are not in the users table \(e.g. 'u2'\)"),
    ("users", lambda f: pd.concat([f, f.head(1)]), DataError,
     r"the users table has duplicate user IDs \(e.g. 'u1'\)"),
    ("listens", lambda f: f.assign(user_id=f.user_id.where(np.arange(len(f)) > 0)), DataError,
     r"column 'user_id' of the listens table has 1 missing values"),
    ("listens", lambda f: f.assign(ms_played=-1), DataError,
     r"'ms_played' of the listens table has negative"),
    ("conversions", lambda f: [1, 2], SchemaError,
     r"the conversions table is a list: expected a Dask or pandas DataFrame"),
])
def test_input_errors(hand_tables: dict[str, pd.DataFrame], table: str, change, error, message) -> None:
    tables = {**hand_tables, table: change(hand_tables[table])}
    with pytest.raises(error, match=message):
        build(tables, end=END)


def test_parameter_and_end_errors(hand_tables: dict[str, pd.DataFrame]) -> None:
    with pytest.raises(ParameterError, match=r"window_days=0 is not a positive number of days"):
        build(hand_tables, window_days=0)
    with pytest.raises(ParameterError, match=r"session_gap_minutes=-1 is not positive"):
        build(hand_tables, session_gap_minutes=-1)
    with pytest.raises(ParameterError, match=r"split_out=0 is not a positive integer"):
        build(hand_tables, split_out=0)
    with pytest.raises(ParameterError, match=r"end='soon' is not a time"):
        build(hand_tables, end="soon")
    with pytest.raises(DataError, match=r"have no rows \(at or before end\)"):
        build(hand_tables, end="2025-01-01")
