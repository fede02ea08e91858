"""The sample lake: layout, determinism, planted truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as pads
import pytest

from daskflow import OutputError, ParameterError
from daskflow.io import read_table
from daskflow.sample import CONVERSION_WINDOW_DAYS, LAKE_SCHEMAS, LAKE_TABLES, generate_lake

from ..conftest import TINY


def table(root: Path, name: str) -> pd.DataFrame:
    fmt = "orc" if any(root.rglob("*.orc")) else "parquet"
    frame = pads.dataset(str(root / name), format=fmt, partitioning="hive").to_table().to_pandas()
    for column in frame.columns:  # list columns (tracks.embedding) as tuples, to sort and compare
        if len(frame) and isinstance(frame[column].iloc[0], np.ndarray):
            frame[column] = frame[column].map(tuple)
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def test_layout_and_manifest(tiny_lake: Path) -> None:
    manifest = json.loads((tiny_lake / "_lake.json").read_text())
    assert (tiny_lake / "_SUCCESS").exists()
    for name, partitioned in LAKE_TABLES.items():
        dirs = sorted(p.name for p in (tiny_lake / name).iterdir())
        if partitioned:
            assert dirs == [f"date=2026-01-0{d}" for d in range(1, 6)]
        frame = read_table(str(tiny_lake / name), schema=LAKE_SCHEMAS[name]).compute()
        assert len(frame) == manifest["rows"][name]
    assert manifest["rows"]["users"] == TINY.n_users
    assert (tiny_lake / "truth" / "model.json").exists()


def test_same_seed_gives_identical_tables(tiny_lake: Path, tmp_path: Path) -> None:
    generate_lake(str(tmp_path / "again"), scale=TINY, seed=7)
    for name in LAKE_TABLES:
        pd.testing.assert_frame_equal(table(tiny_lake, name), table(tmp_path / "again", name))


def test_client_and_local_scheduler_agree(tiny_lake: Path, tmp_path: Path, client: object) -> None:
    generate_lake(str(tmp_path / "on-cluster"), scale=TINY, seed=7, client=client)
    pd.testing.assert_frame_equal(table(tiny_lake, "listens"), table(tmp_path / "on-cluster", "listens"))


def test_other_seed_differs(tiny_lake: Path, tmp_path: Path) -> None:
    generate_lake(str(tmp_path / "other"), scale=TINY, seed=8)
    assert not table(tiny_lake, "listens").equals(table(tmp_path / "other", "listens"))


def test_orc_lake_holds_the_same_data(tiny_lake: Path, tiny_orc_lake: Path) -> None:
    a, b = table(tiny_lake, "listens"), table(tiny_orc_lake, "listens")
    b["ts"] = b["ts"].astype(a["ts"].dtype)
    pd.testing.assert_frame_equal(a, b)


def test_ids_are_unique_strings_and_join(tiny_lake: Path) -> None:
    users, tracks, listens = (table(tiny_lake, t) for t in ("users", "tracks", "listens"))
    assert users.user_id.is_unique and tracks.track_id.is_unique
    assert set(listens.user_id) <= set(users.user_id)
    assert set(listens.track_id) <= set(tracks.track_id)
    joined = listens.merge(tracks, on="track_id", suffixes=("", "_track"))
    assert (joined.artist_id == joined.artist_id_track).all()
    assert (joined.ms_played <= joined.duration_ms).all()


def test_popularity_is_heavy_tailed(tiny_lake: Path) -> None:
    plays = table(tiny_lake, "listens").track_id.value_counts().to_numpy()
    top_share = plays[: len(plays) // 10].sum() / plays.sum()
    assert top_share > 0.3  # the top 10% of tracks take far more than 10% of plays


def test_planted_conversion_truth(tiny_lake: Path) -> None:
    truth = table(tiny_lake, "truth/users").set_index("user_id")
    users = table(tiny_lake, "users").set_index("user_id")
    conversions = table(tiny_lake, "conversions")
    exposed = truth[truth.exposed]
    assert (users.loc[exposed.index, "product"] == "free").all()  # house ads go to free users
    assert set(conversions.user_id) == set(truth.index[truth.converted])
    assert exposed.p_convert.between(0, 1).all() and truth[~truth.exposed].p_convert.isna().all()
    # Every conversion falls within the window after the user's first impression...
    delay = conversions.set_index("user_id").ts - truth.loc[conversions.user_id, "first_ad_ts"]
    assert (delay > pd.Timedelta(0)).all()
    assert (delay < pd.Timedelta(days=CONVERSION_WINDOW_DAYS)).all()
    # ...and that first impression is in the ad log at the planted time.
    impressions = table(tiny_lake, "ad_impressions")
    first = impressions.groupby("user_id").ts.min()
    np.testing.assert_array_equal(first.loc[exposed.index[exposed.first_ad_ts.notna()]].to_numpy(),
                                  exposed.first_ad_ts.dropna().to_numpy())


def test_bad_arguments(tmp_path: Path, tiny_lake: Path) -> None:
    with pytest.raises(ParameterError, match="unknown scale 'huge': expected one of small, medium, large"):
        generate_lake(str(tmp_path / "x"), scale="huge")
    with pytest.raises(ParameterError, match="unknown format 'csv'"):
        generate_lake(str(tmp_path / "x"), format="csv")
    with pytest.raises(OutputError, match="already exists"):
        generate_lake(str(tiny_lake), scale=TINY, seed=7)


# -- the planted A/B test ------------------------------------------------------------------


def test_planted_experiment_assignments_and_truth(tiny_lake: Path) -> None:
    from daskflow.sample._planted_model_kernels import EXPERIMENT, enrollment_days, listening_lift

    experiments = table(tiny_lake, "experiments")
    truth = table(tiny_lake, "truth/experiments").set_index("user_id")
    design = json.loads((tiny_lake / "truth" / "experiment.json").read_text())
    assert experiments.user_id.is_unique and set(experiments.variant) == {"control", "treatment"}
    assert (experiments.experiment == "home_feed").all()
    logged = truth[truth.logged]
    assert set(experiments.user_id) == set(logged.index)
    assert (experiments.set_index("user_id").variant == logged.variant.loc[experiments.user_id]).all()
    # Enrollment happens after the pre-period, within the enrollment days.
    first_day, n_days = enrollment_days(TINY.n_days)
    start = pd.Timestamp("2026-01-01") + pd.Timedelta(days=first_day)
    assert experiments.assigned_at.between(start, start + pd.Timedelta(days=n_days)).all()
    assert design["enrollment_start"] == str(start.date()) and design["pre_period_days"] == first_day
    assert design["listening_ms"]["relative_effect"] == pytest.approx(listening_lift())
    # A conversion after assignment has the treatment's probability for a treated user.
    users = table(tiny_lake, "truth/users").set_index("user_id")
    treated_after = truth[(truth.variant == "treatment")
                          & (truth.conversion_ts_if_converts >= truth.assigned_at)].index
    np.testing.assert_allclose(users.loc[treated_after, "p_convert"], truth.loc[treated_after,
                               "p_convert_treatment"])
    others = truth.index.difference(treated_after)
    np.testing.assert_allclose(users.loc[others, "p_convert"], truth.loc[others, "p_convert_control"])
    assert design["converted"]["absolute_effect"] > 0 and EXPERIMENT.conversion_logit_effect > 0


def test_planted_experiment_lowers_skips_after_assignment(tmp_path: Path) -> None:
    """Treated users' listens after assignment are skipped less; everything else is unchanged."""
    from daskflow.sample import Scale

    scale = Scale(n_users=1_500, n_artists=60, n_tracks=400, n_days=4, n_genres=6,
                  mean_listens_per_active_day=6.0, users_per_chunk=1_500)
    generate_lake(str(tmp_path / "lake"), scale=scale, seed=3)
    listens = table(tmp_path / "lake", "listens").merge(table(tmp_path / "lake", "tracks"), on="track_id")
    truth = table(tmp_path / "lake", "truth/experiments").set_index("user_id")
    listens = listens.join(truth[["variant", "assigned_at"]], on="user_id")
    after = listens.ts >= listens.assigned_at
    skipped = listens.ms_played < 0.5 * listens.duration_ms
    treated = skipped[after & (listens.variant == "treatment")].mean()
    control = skipped[after & (listens.variant == "control")].mean()
    before = skipped[~after | listens.variant.isna()].mean()
    assert abs(control - 0.25) < 0.02 and abs(before - 0.25) < 0.02 and abs(treated - 0.15) < 0.02


def test_srm_loses_treatment_assignments(tmp_path: Path) -> None:
    from daskflow.cli import main

    assert main(["-q", "generate", str(tmp_path / "srm"), "--srm", "--workers", "1"]) == 0
    experiments = table(tmp_path / "srm", "experiments")
    counts = experiments.variant.value_counts()
    design = json.loads((tmp_path / "srm" / "truth" / "experiment.json").read_text())
    assert design["srm"] is True and design["srm_lost_share"] == 0.3
    assert 0.6 < counts["treatment"] / counts["control"] < 0.8  # ~0.7: 30% of treatment lost
