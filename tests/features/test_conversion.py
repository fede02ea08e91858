"""configs/conversion.yaml's feature table on the generic layer: a hand-checked case, the planted truth.

The house-ad features (docs/conversion_features.md) are one config of features.table,
features.aggregates and features.derived; here they are built from that config on a lake small
enough to check every value by hand, on the planted-truth lake (the model must recover the
truth's ranking), on Parquet and ORC alike, and on the cluster as without it.
"""

from __future__ import annotations

from pathlib import Path

import dask
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from daskflow.config import Config, load_config
from daskflow.experiment._classify import table_arguments, table_frame
from daskflow.features.tabular import TableEncoder, build_entity_table
from daskflow.io import read_table
from daskflow.models import LogisticRegression
from daskflow.sample import Scale, generate_lake

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "conversion.yaml"
DAY = pd.Timedelta(days=1)


def conversion_config(lake: Path, *overrides: str, monkeypatch: pytest.MonkeyPatch) -> Config:
    """configs/conversion.yaml on ``lake`` (its sources follow DASKFLOW_LAKE)."""
    monkeypatch.setenv("DASKFLOW_LAKE", str(lake))
    fmt = "orc" if any(lake.glob("users/*.orc")) else "parquet"
    return load_config(CONFIG, [f"data.format={fmt}", *overrides])


def local_scheduler() -> object:
    """Dask's threads, also when the session's cluster is the default client."""
    return dask.config.set({"scheduler": "threads", "dataframe.shuffle.method": "tasks"})


def by_user(frame) -> pd.DataFrame:
    frame = frame.compute() if hasattr(frame, "compute") else frame
    return frame.astype({"user_id": str}).sort_values("user_id").reset_index(drop=True)


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


#: The bespoke builder's end was inclusive (events at or before 23:59:59); the cutoff is exclusive.
CUTOFF = "2026-01-10T23:59:59.001"


@pytest.fixture(scope="module")
def hand_features(hand_lake: Path) -> pd.DataFrame:
    with pytest.MonkeyPatch.context() as monkeypatch, local_scheduler():
        config = conversion_config(hand_lake, f"features.aggregates.cutoff={CUTOFF}", monkeypatch=monkeypatch)
        return by_user(table_frame(config)).set_index("user_id")


def test_behaviour_features_by_hand(hand_features: pd.DataFrame) -> None:
    u1 = hand_features.loc["u1"]
    assert u1.n_listens == 5 and u1.listen_hours == pytest.approx(900_000 / 3_600_000)
    assert u1.sessions == 3  # 10:00-10:20, 11:00, 23:50-00:10 (across midnight and files)
    assert (u1.active_days, u1.days_observed, u1.active_share) == (2, 10, pytest.approx(0.2))
    assert u1.listens_per_active_day == 2.5
    assert (u1.distinct_tracks, u1.distinct_artists) == (3, 2)
    assert u1.recency_days == pytest.approx((T(CUTOFF) - T("2026-01-02 00:10")) / DAY, rel=1e-12)
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
    since_first = (T(CUTOFF) - T("2026-01-01 09:00")) / DAY
    assert u1.days_since_first_impression == pytest.approx(since_first, rel=1e-12)
    # u2's impression is at 10:00 but its day's listen at 12:00 counts; u3 listened only after.
    assert f.loc["u2", "listens_since_first_impression"] == 1
    assert f.loc["u3", "ads_per_listen"] == pytest.approx(1 / 3)
    # Window (first impression, + 7 days] (label.closed: right): the end is in, the impression itself
    # is not. Only exposed, uncensored users have a label (u4 and u6 saw no ad, u5 is censored).
    labelled = f["label"].dropna().astype(int).to_dict()
    assert labelled == {"u1": 1, "u2": 0, "u3": 0}
    assert f.index[f["exposed"]].tolist() == ["u1", "u2", "u3", "u5"]
    assert f.index[f["label_censored"]].tolist() == ["u5"]  # 2026-01-08 + 7 days is after the cutoff
    u6 = f.loc["u6"]  # no events: zeros, recency = the whole observation, no first impression
    assert (u6.n_listens, u6.sessions, u6.impressions, u6.ads_per_listen) == (0, 0, 0, 0.0)
    assert u6.recency_days == 10 and pd.isna(u6.first_impression_ts) and u6.days_since_first_impression == 0


def test_default_cutoff_is_after_the_latest_event(hand_lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with local_scheduler():
        features = by_user(table_frame(conversion_config(hand_lake, monkeypatch=monkeypatch))).set_index(
            "user_id")
    # cutoff: latest is 1 ms after the latest event, u5's listen at 23:00 (conversions do not count).
    assert features.loc["u5", "recency_days"] == pytest.approx(1 / 86_400_000, rel=1e-6)
    latest = (T("2026-01-10 23:00:00.001") - T("2026-01-01 09:00")) / DAY
    assert features.loc["u1", "days_since_first_impression"] == pytest.approx(latest, rel=1e-12)
    assert features.index[features["label_censored"]].tolist() == ["u5"]


# -- the planted truth ---------------------------------------------------------------------

#: 28 days so that most first impressions have a complete 7-day label window, and ~10
#: listens per active day so that the ad load (impressions per listen) is measured from
#: enough impressions; see docs/conversion_features.md.
PLANTED = Scale(n_users=10_000, n_artists=300, n_tracks=2_000, n_days=28, n_genres=8,
                mean_listens_per_active_day=10.0, users_per_chunk=5_000)


def test_planted_truth_is_recovered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Test AUC within 0.02 of the AUC of the true probabilities, from conversion.yaml's table."""
    with local_scheduler():
        generate_lake(str(tmp_path / "lake"), scale=PLANTED, seed=0)
        # The users split as before the generic layer (split_users' default: a quarter in test, seed 0).
        config = conversion_config(tmp_path / "lake", "features.table.split.test_size=0.25",
                                   monkeypatch=monkeypatch)
        table = build_entity_table(table_frame(config), seed=0, **table_arguments(config))
        train, test = table.train(), table.test()
        spec = config.features.table
        encoder = TableEncoder(categorical_columns=table.categorical, numeric_columns=table.numeric,
                               log_columns=table.log, smooth=spec.smooth,
                               prior_events=spec.prior_events).fit(train)
        # daskflow's own estimator, on the Dask table (Newton, the default solver).
        model = LogisticRegression(C=1.0).fit(encoder.transform(train), table.labels(train))
        test = test.compute()
        predicted = model.predict_proba(encoder.transform(test))[:, 1]
        truth = read_table(str(tmp_path / "lake" / "truth" / "users"), columns=["user_id", "p_convert"])
        true_p = truth.compute().set_index("user_id")["p_convert"].loc[test["user_id"]]
    labels = table.labels(test).astype(int)
    assert len(test) > 800 and labels.sum() > 150
    auc, true_auc = roc_auc_score(labels, predicted), roc_auc_score(labels, true_p)
    assert true_auc - auc <= 0.02, (auc, true_auc)


# -- equal results whatever the format, scheduler or partitioning ---------------------------


def test_parquet_and_orc_lakes_give_equal_features(tiny_lake: Path, tiny_orc_lake: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    window = "features.table.label.within_days=1"
    with local_scheduler():
        parquet = by_user(table_frame(conversion_config(tiny_lake, window, monkeypatch=monkeypatch)))
        orc = by_user(table_frame(conversion_config(tiny_orc_lake, window, monkeypatch=monkeypatch)))
    # ORC keeps the signup date as text: its days (tenure_days, days_observed) must agree all the same.
    pd.testing.assert_frame_equal(parquet.astype({"signup_date": str}), orc.astype({"signup_date": str}),
                                  check_dtype=False)
    assert len(parquet) == 300 and parquet["exposed"].any() and (parquet["label"] == 1).any()


@pytest.mark.slow  # ~10 s: the first shuffles on fresh workers
def test_cluster_equals_default_scheduler(tiny_lake: Path, client: object,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    config = conversion_config(tiny_lake, "features.table.label.within_days=1", monkeypatch=monkeypatch)
    on_cluster = by_user(table_frame(config, client))
    with local_scheduler():
        local = by_user(table_frame(config))
    pd.testing.assert_frame_equal(on_cluster, local)
