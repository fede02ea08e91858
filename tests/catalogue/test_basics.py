"""The first bad-input cases: missing and malformed data, bad config values, unreachable peers.

Run through the CLI by :func:`tests.catalogue._harness.check_case`; docs/errors.md lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.orc as orc
import pytest
import yaml

from tests.catalogue._harness import (
    Case,
    check_case,
    copy_listens,
    free_port,
    listens_rows,
    uri,
    write_day,
)


def _corrupt(lake: Path, work: Path) -> list[str]:
    listens = copy_listens(lake, work)
    (listens / "date=2026-01-01" / "broken.parquet").write_bytes(b"PAR1 not really parquet")
    return uri(listens)


def _orc_wrong_schema(lake: Path, work: Path) -> list[str]:
    (work / "orc").mkdir()
    orc.write_table(pa.table({"user_id": [1, 2], "track_id": ["x", "y"], "ms_played": [1, 2],
                              "ts": pa.array([1, 2], pa.timestamp("ms"))}), work / "orc" / "p.orc")
    return uri(work / "orc") + ["data.sources.listens.format=orc"]


def _bad_counts(value: float) -> Callable[[Path, Path], list[str]]:
    def make(lake: Path, work: Path) -> list[str]:
        root = work / "counts"
        write_day(root, "2026-01-01", listens_rows(["u1", "u2", "u3"], pa.array([4.0, 2.0, 1.0])))
        write_day(root, "2026-01-02", listens_rows(["u1", "u2"], pa.array([value, 5.0])))
        return uri(root) + ["data.sources.listens.schema.ms_played=number",
                            "features.interactions.weight=ms_played"]
    return make


def _single_user(lake: Path, work: Path) -> list[str]:
    root = work / "one"
    write_day(root, "2026-01-01", listens_rows(["u1"] * 3, [1, 2, 3]))
    return uri(root)


def _mixed_ids(lake: Path, work: Path) -> list[str]:
    listens = copy_listens(lake, work)
    write_day(listens, "2026-01-02", listens_rows(pa.array([17, 18], pa.int64()), [1, 2]))
    return uri(listens)


def _drift(lake: Path, work: Path) -> list[str]:
    listens = copy_listens(lake, work)
    write_day(listens, "2026-01-03", listens_rows(["u1", "u2"], pa.array(["1", "2"])))
    return uri(listens) + ["data.sources.listens.schema={}"]


def _empty_dir(lake: Path, work: Path) -> list[str]:
    (work / "empty").mkdir()
    return uri(work / "empty")


def _unset_env(lake: Path, work: Path) -> list[str]:
    config = yaml.safe_load((work / "config.yaml").read_text())
    config["cluster"]["memory_limit"] = "${env:DASKFLOW_SURELY_UNSET_VARIABLE}"
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    return []


def _unknown_key(lake: Path, work: Path) -> list[str]:
    config = yaml.safe_load((work / "config.yaml").read_text())
    config["model"]["nmae"] = "als"
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    return []


def _not_writable(lake: Path, work: Path) -> list[str]:
    (work / "a-file").write_text("not a directory")
    return [f"output.dir={work / 'a-file' / 'outputs'}"]


def _existing_run(lake: Path, work: Path) -> list[str]:
    (work / "out" / "bad" / "fixed").mkdir(parents=True)
    return ["output.run_id=fixed"]


def _unreachable_s3(lake: Path, work: Path) -> list[str]:
    port = free_port()  # nothing listens there
    return ["data.sources.listens.uri=s3://lake/listens",
            f"data.sources.listens.storage_options={{endpoint_url: 'http://127.0.0.1:{port}', "
            # botocore's own retries inside each of daskflow's 3 attempts: one, to keep this quick
            "key: a, secret: b, config_kwargs: {retries: {max_attempts: 1}}}"]


def _unreachable_scheduler(lake: Path, work: Path) -> list[str]:
    # The base config's LocalCluster settings give way to the remote kind (config/_kinds.py).
    return [f"cluster.address=tcp://127.0.0.1:{free_port()}", "cluster.connect_timeout=0.5"]


#: A small house-ad table on the lake: users, labelled by a conversion within a day of the first ad.
HOUSE_AD = ["features.table={source: users, id: user_id, split: {hash: user_id, test_size: 0.3}, "
            "drop: [signup_date], label: {source: conversions, time: ts, within_days: 1, anchor: first_ad, "
            "closed: right, censor: true}}",
            "features.aggregates={cutoff: latest, anchors: {first_ad: {events: ads}}, events: {ads: "
            "{source: ad_impressions, id: user_id, time: ts}}}"]


def _conversion(*overrides: str) -> Callable[[Path, Path], list[str]]:
    def make(lake: Path, work: Path) -> list[str]:
        return ["experiment.stages=[features,classify]", *HOUSE_AD, *overrides]
    return make


def _static(*arguments: str) -> Callable[[Path, Path], list[str]]:
    return lambda lake, work: list(arguments)


CASES: dict[str, Case] = {
    "missing path": Case(lambda lake, work: uri(work / "nope"),
                         ("no data at source 'listens'", "the path does not exist")),
    "empty directory": Case(_empty_dir, ("no parquet files in", "the directory is empty")),
    "corrupt parquet file": Case(_corrupt, ("broken.parquet", "is not a readable parquet file")),
    "orc file with a wrong schema": Case(_orc_wrong_schema,
                                         ("column 'user_id' of source 'listens'", "expected string")),
    "required column missing": Case(_static("data.sources.listens.schema.plays=integer"),
                                    ("required column 'plays' is missing from source 'listens'",)),
    "column of the wrong type": Case(_static("data.sources.listens.schema.user_id=integer"),
                                     ("column 'user_id' of source 'listens'", "expected integer")),
    "NaN play counts": Case(_bad_counts(float("nan")), ("'ms_played'", "negative, NaN or infinite")),
    "negative play counts": Case(_bad_counts(-3.0), ("'ms_played'", "negative, NaN or infinite")),
    "empty table after filters": Case(_static("data.sources.listens.filters=[[date, '>', '2030-01-01']]"),
                                      ("has no rows (after filters)", "filters")),
    "a single user": Case(_single_user, ("has 1 user(s)", "needs at least 2 of each")),
    "mixed ID types": Case(_mixed_ids, ("schema drift", "'user_id'")),
    "schema drift between partitions": Case(_drift, ("schema drift", "'ms_played'")),
    "unknown config key": Case(_unknown_key, ("unknown key 'model.nmae'",)),
    "wrong type in config": Case(_static("cluster.n_workers=two"), ("cluster.n_workers", "integer")),
    "n_factors 0": Case(_static("model.name=als", "model.params={n_factors: 0}"),
                        ("n_factors=0", "is invalid")),
    "negative regularization": Case(_static("model.name=als", "model.params={regularization: -1.0}"),
                                    ("regularization=-1.0", "is invalid")),
    "unknown model name": Case(_static("model.name=bert"), ("unknown model 'bert'", "available: als")),
    "unknown classifier": Case(_conversion("classify.models={m: {model: bert}}"),
                               ("unknown classifier 'bert'",)),
    "mini_batch_fraction 0": Case(
        _conversion("classify.models={m: {model: logistic_regression, "
                    "params: {solver: sgd, mini_batch_fraction: 0.0}}}"),
        ("mini_batch_fraction=", "expected a number > 0 and <= 1", "classify.models.m.params")),
    "mini_batch_fraction above 1": Case(
        _conversion("classify.models={m: {model: logistic_regression, "
                    "params: {solver: sgd, mini_batch_fraction: 1.5}}}"),
        ("mini_batch_fraction=", "expected a number > 0 and <= 1", "classify.models.m.params")),
    "C not positive": Case(
        _conversion("classify.models={m: {model: logistic_regression, params: {C: 0}}}"),
        ("C=0", "is invalid")),
    "classify stage without features.table": Case(
        _static("experiment.stages=[features,classify]"),
        ("classify the rows of features.table, which is not set", "configs/conversion.yaml")),
    "old conversion keys": Case(
        _static("experiment.stages=[features,classify]", "conversion.sources={listens: listens}",
                "conversion.window_days=7", "conversion.split={by: user}", "conversion.models={}"),
        ("the conversion: section is gone", "conversion.sources -> features.table.source",
         "conversion.window_days -> features.table.label.within_days",
         "conversion.split -> features.table.split",
         "conversion.models -> classify.models")),
    "derived column outside the expression language": Case(
        _conversion("features.derived={x: \"__import__('os').getcwd()\"}"),
        ("features.derived", "derived.x", "getcwd() is not a function of derived columns",
         "allowed are ratio, where")),
    "derived column reading an unknown column": Case(
        _conversion("features.derived={x: n_listens * 2}"),
        ("features.derived.x = 'n_listens * 2' reads 'n_listens', not a column of the table",
         "ads_count_all")),
    "derived column reading the label": Case(
        _conversion("features.derived={x: conversions_within_1d + 1}"),
        ("features.derived.x reads 'conversions_within_1d', the label",)),
    "anchor naming no events entry": Case(
        _conversion("features.aggregates.anchors={first_ad: {events: impressions}}"),
        ("features.aggregates",
         "anchors.first_ad.events is 'impressions', not an entry of events (has ads)")),
    "since naming no anchor": Case(
        _conversion("features.aggregates.events.later={source: ad_impressions, id: user_id, time: ts, "
                    "since: first_listen}"),
        ("events.later.since is 'first_listen', not an entry of anchors (has first_ad)",)),
    "label anchor naming no anchor": Case(
        _conversion("features.table.label.anchor=first_listen"),
        ("features.table.label.anchor is 'first_listen', not an entry of features.aggregates.anchors "
         "(has first_ad)",)),
    "anchored label window not observed": Case(
        _conversion("features.table.label.censor=false", "features.table.label.within_days=30"),
        ("features.table.label: the label window of", "not fully observed",
         "Set features.table.label.censor: true")),
    "bad override syntax": Case(_static("model.name"), ("bad override 'model.name'",)),
    "unset environment variable": Case(_unset_env, ("DASKFLOW_SURELY_UNSET_VARIABLE", "is not set")),
    "unreachable scheduler address": Case(_unreachable_scheduler,
                                          ("cannot reach the Dask scheduler", "after 3 attempts")),
    "unreachable S3 endpoint": Case(_unreachable_s3, ("cannot reach source 'listens'", "endpoint")),
    "output path not writable": Case(_not_writable, ("output directory", "output.dir")),
    "an existing run directory": Case(_existing_run, ("run directory", "already exists")),
    "missing config file": Case(lambda lake, work: ["--config-missing"], ("does not exist",),
                                command="validate"),
}



@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exits_2_with_one_actionable_message(name: str, lake: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    check_case(CASES[name], lake, tmp_path, capsys, monkeypatch)
