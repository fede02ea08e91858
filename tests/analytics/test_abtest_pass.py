"""The A/B test's Dask pass equals a pandas reference; the issue's example runs end to end."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from daskflow.analytics import (
    BROADCAST_MAX_UNITS,
    MetricSpec,
    abtest_sufficient_stats,
    assignment_units,
    compare,
    cuped_theta,
    stats_from_values,
)
from daskflow.cli import main
from daskflow.io import read_table
from daskflow.sample import Scale, generate_lake

ROOT = Path(__file__).parents[2]
T = pd.Timestamp


def write(path: Path, frame: pd.DataFrame) -> str:
    path.mkdir(parents=True)
    frame.to_parquet(path / "part-0.parquet", index=False)
    return str(path)


@pytest.fixture
def tables(tmp_path: Path) -> dict[str, str]:
    assignments = pd.DataFrame({
        "user_id": ["a", "b", "c", "d", "e", "a"],
        "variant": ["control", "treatment", "control", "treatment", "treatment", "control"],
        # a is logged twice: the first assignment counts.
        "assigned_at": [T("2026-01-05 10:00"), T("2026-01-05 12:00"), T("2026-01-06"), T("2026-01-06"),
                        T("2026-01-07"), T("2026-01-08")],
    })
    listens = pd.DataFrame({
        "user_id": ["a", "a", "a", "a", "b", "b", "b", "c", "c", "d", "x"],
        "ms_played": [100, 200, 400, 800, 50, 60, 70, 5, 7, 1000, 9],
        "ts": [T("2026-01-05 10:00"),   # a: at assignment, counted
               T("2026-01-07 09:59"),   # a: within 2 days
               T("2026-01-07 10:00"),   # a: the window's end, not counted
               T("2026-01-04 12:00"),   # a: pre-period
               T("2026-01-05 11:00"),   # b: before its assignment (pre-period)
               T("2026-01-05 13:00"), T("2026-01-06 13:00"),
               T("2026-01-01"),         # c: before the 2-day pre-period
               T("2026-01-06 01:00"),
               T("2026-01-06 23:00"),
               T("2026-01-06")],        # x: not assigned
    })  # e has no listens: it counts with 0
    return {"assignments": write(tmp_path / "assignments", assignments),
            "listens": write(tmp_path / "listens", listens)}


def reference(tables: dict[str, str], within: int, pre: int) -> pd.DataFrame:
    """Per-unit window sums, the plain pandas way."""
    units = pd.read_parquet(tables["assignments"]).sort_values("assigned_at").drop_duplicates("user_id")
    rows = pd.read_parquet(tables["listens"]).merge(units, on="user_id")
    delta = rows.ts - rows.assigned_at
    rows["x"] = np.where((delta >= pd.Timedelta(0)) & (delta < pd.Timedelta(days=within)), rows.ms_played, 0)
    rows["n"] = np.where((delta >= pd.Timedelta(0)) & (delta < pd.Timedelta(days=within)), 1, 0)
    rows["c"] = np.where((delta < pd.Timedelta(0)) & (delta >= -pd.Timedelta(days=pre)), rows.ms_played, 0)
    sums = rows.groupby("user_id")[["x", "n", "c"]].sum()
    return units.set_index("user_id").join(sums).fillna(0.0)


@pytest.mark.parametrize("max_broadcast_units", [BROADCAST_MAX_UNITS, 0], ids=["units-held", "merge"])
def test_pass_equals_pandas(tables: dict[str, str], max_broadcast_units: int) -> None:
    assignments = read_table(tables["assignments"])
    listens = read_table(tables["listens"])
    units, summary = assignment_units(assignments, unit="user_id", variant="variant", time="assigned_at",
                                      control="control")
    assert summary.counts == {"control": 2, "treatment": 3}
    metrics = {"listening": MetricSpec("listens", "mean", 2, value="ms_played", pre_days=2),
               "listened": MetricSpec("listens", "proportion", 2),
               "per_listen": MetricSpec("listens", "ratio", 2, value="ms_played")}
    stats, info = abtest_sufficient_stats(units, {"listens": listens}, metrics, unit="user_id",
                                          variant="variant", assigned="assigned_at",
                                          max_broadcast_units=max_broadcast_units)
    expected = reference(tables, within=2, pre=2)
    assert info["listening"]["rows_in_window"] == int(expected.n.sum()) == 6
    for variant, group in expected.groupby("variant"):
        assert stats["listening"][variant] == stats_from_values(group.x.to_numpy(), c=group.c.to_numpy())
        assert stats["listened"][variant].sum_x == (group.n > 0).sum()
        ratio = stats["per_listen"][variant]
        assert (ratio.sum_x, ratio.sum_y, ratio.sum_xy) == (group.x.sum(), group.n.sum(),
                                                            (group.x * group.n).sum())


@pytest.mark.slow  # ~7 s: the first shuffles on fresh workers
def test_pass_on_the_cluster_equals_the_local_scheduler(tables: dict[str, str], client: object) -> None:
    metrics = {"listening": MetricSpec("listens", "mean", 2, value="ms_played", pre_days=2)}
    results = []
    for scheduler in (None, client):
        units, _ = assignment_units(read_table(tables["assignments"]), unit="user_id", variant="variant",
                                    time="assigned_at", control="control", client=scheduler)
        results.append(abtest_sufficient_stats(units, {"listens": read_table(tables["listens"])}, metrics,
                                               unit="user_id", variant="variant", assigned="assigned_at",
                                               client=scheduler)[0])
    assert results[0] == results[1]


# -- the example, end to end --------------------------------------------------------


def lake_units(lake: Path, within: int = 14, pre: int = 14) -> pd.DataFrame:
    """Per-unit metric values of the planted A/B test, computed with pandas from the lake."""
    units = pd.read_parquet(lake / "experiments")
    out = units.set_index("user_id")
    for name, table in (("converted", "conversions"), ("listening", "listens")):
        rows = pd.read_parquet(lake / table, columns=["user_id", "ts"] + (["ms_played"] if table == "listens"
                                                                          else [])).merge(units, on="user_id")
        delta = rows.ts - rows.assigned_at
        post = (delta >= pd.Timedelta(0)) & (delta < pd.Timedelta(days=within))
        pre_mask = (delta < pd.Timedelta(0)) & (delta >= -pd.Timedelta(days=pre))
        value = rows.ms_played if table == "listens" else 1
        rows["x"], rows["c"] = np.where(post, value, 0), np.where(pre_mask, value, 0)
        sums = rows.groupby("user_id")[["x", "c"]].sum()
        out[f"{name}_x"] = sums.x.reindex(out.index, fill_value=0)
        out[f"{name}_c"] = sums.c.reindex(out.index, fill_value=0)
    out["converted_x"] = (out.converted_x > 0).astype(float)
    return out


def run_example(lake: Path, tmp_path: Path, *extra: str) -> tuple[int, Path | None]:
    overrides = [f"data.sample.path={lake}", f"data.sources.experiments.uri={lake / 'experiments'}",
                 f"data.sources.listens.uri={lake / 'listens'}",
                 f"data.sources.conversions.uri={lake / 'conversions'}", f"output.dir={tmp_path / 'out'}",
                 "cluster.n_workers=1", "cluster.processes=false", "cluster.dashboard_address=:0", *extra]
    code = main(["-q", "run", str(ROOT / "configs" / "ab.yaml"), *overrides])
    runs = sorted((tmp_path / "out" / "ab").glob("[!.]*"))
    return code, runs[-1] if runs else None


@pytest.mark.slow  # ~5 s: a LocalCluster and a report
def test_example_runs_and_equals_the_in_memory_statistics(tiny_lake: Path, tmp_path: Path) -> None:
    code, run = run_example(tiny_lake, tmp_path)
    assert code == 0 and run is not None
    metrics = json.loads((run / "metrics.json").read_text())["abtest"]
    assert metrics["srm"]["passed"] and not metrics["flagged"]
    rows = {row["metric"]: row for row in metrics["results"]}
    units = lake_units(tiny_lake)
    control, treatment = (units[units.variant == v] for v in ("control", "treatment"))
    # converted: a plain proportion.
    expected = compare(stats_from_values(control.converted_x), stats_from_values(treatment.converted_x),
                       "proportion")
    for key, value in (("difference", expected.difference), ("p_value", expected.p_value),
                       ("ci_low", expected.ci[0]), ("relative_ci_high", expected.relative_ci[1])):
        assert rows["converted"][key] == pytest.approx(value, rel=1e-9, abs=1e-12)
    # listen_hours: CUPED with the 14 days before assignment.
    arms = [stats_from_values(g.listening_x, c=g.listening_c) for g in (control, treatment)]
    pooled = arms[0] + arms[1]
    theta = cuped_theta(pooled)
    expected = compare(*arms, "mean", theta=theta, covariate_mean=pooled.sum_c / pooled.n)
    plain = compare(*arms, "mean")
    row = rows["listen_hours"]
    assert row["difference"] == pytest.approx(expected.difference, rel=1e-9)
    assert row["standard_error"] == pytest.approx(expected.standard_error, rel=1e-9)
    assert row["unadjusted_difference"] == pytest.approx(plain.difference, rel=1e-9)
    reduction = 1 - (expected.standard_error / plain.standard_error) ** 2
    assert row["variance_reduction"] == pytest.approx(reduction)
    assert 0 < row["variance_reduction"] < 1
    # Holm over the two metrics.
    p = sorted((rows[m]["p_value"], m) for m in rows)
    assert rows[p[0][1]]["p_value_adjusted"] == pytest.approx(min(1, 2 * p[0][0]))
    # The Dataset, the table and the report.
    results = xr.open_dataset(run / "artifacts" / "abtest.nc", engine="scipy").load()
    assert results["value"].dims == ("metric", "variant", "statistic")
    assert float(results["value"].sel(metric="converted", variant="treatment", statistic="difference")) \
        == pytest.approx(rows["converted"]["difference"])
    assert math.isnan(float(results["value"].sel(metric="converted", variant="control",
                                                 statistic="p_value")))
    report = (run / "report.html").read_text()
    forest = (run / "plots" / "abtest_forest.png").read_bytes()
    assert base64.b64encode(forest).decode() in report  # the forest plot is embedded, whatever its caption


SRM_SCALE = Scale(n_users=3_000, n_artists=60, n_tracks=400, n_days=5, n_genres=6,
                  mean_listens_per_active_day=2.0, users_per_chunk=1_500)


@pytest.mark.slow  # ~6 s: a lake and two runs
def test_a_sample_ratio_mismatch_is_flagged_or_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    lake = tmp_path / "srm-lake"
    generate_lake(str(lake), scale=SRM_SCALE, seed=1, srm=True)
    code, run = run_example(lake, tmp_path)
    assert code == 0 and run is not None
    metrics = json.loads((run / "metrics.json").read_text())["abtest"]
    assert metrics["flagged"] and not metrics["srm"]["passed"] and metrics["srm"]["p_value"] < 0.001
    assert metrics["results"]  # still published, flagged
    capsys.readouterr()
    code, _ = run_example(lake, tmp_path, "abtest.fail_on_srm=true", "output.run_id=strict")
    err = capsys.readouterr().err
    assert code == 2 and "sample-ratio mismatch" in err and "abtest.fail_on_srm" in err
    assert not (tmp_path / "out" / "ab" / "strict").exists()
