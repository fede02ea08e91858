"""Bad input to the A/B test stage: each case runs configs/ab.yaml's experiment,
changed in one way, through the CLI; docs/errors.md lists them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from daskflow.sample import Scale, generate_lake
from tests.catalogue._harness import Case, check_case

ROOT = Path(__file__).parents[2]


def ab_config(lake: Path, work: Path, change: Callable[[dict[str, Any]], None]) -> list[str]:
    """configs/ab.yaml on ``lake``, changed by ``change``, written to ``work``: the case's argv."""
    config = yaml.safe_load((ROOT / "configs" / "ab.yaml").read_text())
    config["experiment"]["name"] = "bad"
    config["data"]["sample"]["path"] = str(lake)
    for name, source in config["data"]["sources"].items():
        source["uri"] = str(lake / name)
    config["cluster"] = {"n_workers": 1, "processes": False, "dashboard_address": ":0"}
    config["output"] = {"dir": str(work / "out")}
    change(config)
    path = work / "ab.yaml"
    path.write_text(yaml.safe_dump(config))
    return ["--argv", str(path)]


def _changed(change: Callable[[dict[str, Any]], None]) -> Callable[[Path, Path], list[str]]:
    return lambda lake, work: ab_config(lake, work, change)


def _assignments_copy(lake: Path, work: Path, edit: Callable[[pd.DataFrame], pd.DataFrame]
                      ) -> Callable[[dict[str, Any]], None]:
    frame = edit(pd.read_parquet(lake / "experiments"))
    (work / "experiments").mkdir()
    frame.to_parquet(work / "experiments" / "part-0.parquet", index=False)

    def change(config: dict[str, Any]) -> None:
        config["data"]["sources"]["experiments"]["uri"] = str(work / "experiments")

    return change


def _two_variants(lake: Path, work: Path) -> list[str]:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        twice = frame[frame.variant == "control"].head(2).assign(variant="treatment")
        return pd.concat([frame, twice], ignore_index=True)

    return ab_config(lake, work, _assignments_copy(lake, work, edit))


def _two_experiments(lake: Path, work: Path) -> list[str]:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.concat([frame, frame.head(5).assign(experiment="paywall")], ignore_index=True)

    return ab_config(lake, work, _assignments_copy(lake, work, edit))


def _no_unit_column(config: dict[str, Any]) -> None:
    config["data"]["sources"]["tracks"] = {"uri": config["data"]["sample"]["path"] + "/tracks"}
    config["abtest"]["metrics"]["track_length"] = {"source": "tracks", "kind": "mean",
                                                   "value": "duration_ms", "within_days": 14}


def _empty_window(config: dict[str, Any]) -> None:
    # Listens of the first day only: every assignment is later (after the pre-period).
    config["data"]["sources"]["listens"]["filters"] = [["date", "=", "2026-01-01"]]


def _srm_lake(lake: Path, work: Path) -> list[str]:
    scale = Scale(n_users=3_000, n_artists=60, n_tracks=400, n_days=5, n_genres=6,
                  mean_listens_per_active_day=2.0, users_per_chunk=1_500)
    generate_lake(str(work / "srm"), scale=scale, seed=1, srm=True)

    def change(config: dict[str, Any]) -> None:
        config["abtest"]["fail_on_srm"] = True

    return ab_config(work / "srm", work, change)


def _set(*keys: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        node = config
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return change


def _drop_abtest(config: dict[str, Any]) -> None:
    del config["abtest"]


CASES: dict[str, Case] = {
    "unit assigned to two variants": Case(_two_variants, (
        "2 unit(s) assigned to more than one variant in column 'variant'", "abtest.assignments",
        "expected each unit in exactly one variant")),
    "missing control variant": Case(_changed(_set("abtest", "assignments", "control", value="baseline")), (
        "control variant 'baseline' not found", "abtest.assignments.control", "found control (",
        "treatment (")),
    "variant in the split without units": Case(_changed(_set("abtest", "split", value={
        "control": 0.4, "treatment": 0.4, "treatment_b": 0.2})), (
        "variant 'treatment_b' has no units (abtest.split)", "found control (")),
    "metric source without the unit column": Case(_changed(_no_unit_column), (
        "metric source 'tracks' has no column 'user_id'", "abtest.metrics.track_length.source",
        "found track_id")),
    "metric window with no rows": Case(_changed(_empty_window), (
        "no row of source 'listens' falls within 14 day(s) after any unit's assignment",
        "abtest.metrics.listen_hours", "runs from 2026-01-01")),
    "metric window of zero days": Case(_changed(_set("abtest", "metrics", "converted", "within_days",
                                                     value=0)), (
        "abtest.metrics.converted.within_days", "expected a whole number of days >= 1, got 0")),
    "assignment log with two experiments": Case(_two_experiments, (
        "holds 2 experiments (home_feed, paywall)", "abtest.assignments.experiment")),
    "abtest stage without an abtest section": Case(_changed(_drop_abtest), (
        "experiment.stages has 'abtest' but there is no abtest: section",)),
    "metric source not in data.sources": Case(_changed(_set("abtest", "metrics", "converted", "source",
                                                            value="purchases")), (
        "abtest.metrics.converted.source is 'purchases', not a data.sources entry",)),
    "sample-ratio mismatch with fail_on_srm": Case(_srm_lake, (
        "sample-ratio mismatch: units per variant", "abtest.fail_on_srm is true")),
}


@pytest.mark.parametrize("name", CASES)
def test_case(name: str, lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
              monkeypatch: pytest.MonkeyPatch) -> None:
    check_case(CASES[name], lake, tmp_path, capsys, monkeypatch)
