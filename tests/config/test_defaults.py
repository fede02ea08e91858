"""Each default is written once: a config key passed straight to a library parameter has the
library's default (docs/development.md, "Conventions")."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from daskflow import analytics, cluster, evaluation, features, models, prediction, sample, tuning
from daskflow.config import _models as config
from daskflow.features import tabular

#: (config section, key, library function or class, its parameter) for every config key the
#: runner passes to a library parameter whose default it shares.
SHARED = [
    (config.SampleConfig, "scale", sample.generate_lake, "scale"),
    (config.SampleConfig, "format", sample.generate_lake, "format"),
    (config.SampleConfig, "seed", sample.generate_lake, "seed"),
    (config.InteractionsConfig, "user_col", features.build_interactions, "user_col"),
    (config.InteractionsConfig, "item_col", features.build_interactions, "item_col"),
    (config.InteractionsConfig, "weight", features.build_interactions, "weight"),
    (config.InteractionsConfig, "time_col", features.build_interactions, "time_col"),
    (config.InteractionsConfig, "block_size", features.build_interactions, "block_size"),
    (config.InteractionsConfig, "allow_empty_ids", features.build_interactions, "allow_empty_ids"),
    (config.EvaluateConfig, "holdout", features.leave_k_out_split, "k"),
    (config.EvaluateConfig, "min_user_items", features.leave_k_out_split, "min_items"),
    (config.EvaluateConfig, "k", evaluation.evaluate_ranking, "k"),
    (config.TuneConfig, "method", tuning.search, "method"),
    (config.TuneConfig, "method", tuning.search_recommender, "method"),
    (config.TuneConfig, "n_trials", tuning.search, "n_trials"),
    (config.TuneConfig, "n_trials", tuning.search_recommender, "n_trials"),
    (config.TuneConfig, "folds", tuning.search, "folds"),
    (config.TuneConfig, "folds", tuning.search_recommender, "folds"),
    (config.ContentConfig, "max_categories", models.ContentEncoder, "max_categories"),
    (config.ContentConfig, "model", models.ContentToFactors, "model"),
    (config.PredictConfig, "n", prediction.recommend_all, "n"),
    (config.PredictConfig, "filter_seen", prediction.recommend_all, "filter_seen"),
    (config.AbtestAssignmentsConfig, "experiment_column", analytics.assignment_units, "experiment_column"),
    (config.AbtestConfig, "alpha", analytics.analyze_abtest, "alpha"),
    (config.AbtestConfig, "correction", analytics.analyze_abtest, "correction"),
    (config.AbtestConfig, "srm_threshold", analytics.analyze_abtest, "srm_threshold"),
    (config.AbtestConfig, "power", analytics.analyze_abtest, "power"),
    (config.KpisActiveConfig, "min_events", analytics.activity_kpis, "min_events"),
    (config.KpisActiveConfig, "wau_days", analytics.activity_kpis, "wau_days"),
    (config.KpisActiveConfig, "mau_days", analytics.activity_kpis, "mau_days"),
    (config.KpisRetentionConfig, "period", analytics.activity_kpis, "retention_period"),
    (config.KpisRetentionConfig, "signup", analytics.activity_kpis, "signup_column"),
    (config.KpisConfig, "lifecycle_period", analytics.activity_kpis, "lifecycle_period"),
    (config.TableConfig, "prior_events", tabular.TableEncoder, "prior_events"),
    (config.ClassifySelectionConfig, "metric", tuning.cross_validate, "metric"),
    (config.ClassifySelectionConfig, "folds", tuning.cross_validate, "folds"),
    (config.ClassifySelectionConfig, "holdout", tuning.cross_validate, "holdout"),
    (config.ClassifyConfig, "depths", evaluation.evaluate_classifier, "depths"),
    (config.ClassifyConfig, "calibration_bins", evaluation.evaluate_classifier, "n_bins"),
    (config.ClusterConfig, "n_workers", cluster.start_local, "n_workers"),
    (config.ClusterConfig, "threads_per_worker", cluster.start_local, "threads_per_worker"),
    (config.ClusterConfig, "memory_limit", cluster.start_local, "memory_limit"),
    (config.ClusterConfig, "processes", cluster.start_local, "processes"),
    (config.ClusterConfig, "dashboard_address", cluster.start_local, "dashboard_address"),
    (config.ClusterConfig, "connect_timeout", cluster.reach_remote, "connect_timeout"),
    (config.KubernetesConfig, "name", cluster.render_manifest, "name"),
    (config.KubernetesConfig, "n_workers", cluster.render_manifest, "n_workers"),
    (config.KubernetesConfig, "worker_cores", cluster.render_manifest, "worker_cores"),
    (config.KubernetesConfig, "worker_memory", cluster.render_manifest, "worker_memory"),
    (config.KubernetesConfig, "scheduler_service_type", cluster.render_manifest, "scheduler_service_type"),
    (config.KubernetesConfig, "env_from_secrets", cluster.render_manifest, "env_from_secrets"),
    (config.KubernetesConfig, "extra_pip_packages", cluster.render_manifest, "extra_pip_packages"),
    (config.KubernetesConfig, "idle_timeout", cluster.render_manifest, "idle_timeout"),
    (config.KubernetesConfig, "api_timeout", cluster.check_api, "api_timeout"),
    (config.KubernetesConfig, "api_retries", cluster.check_api, "api_retries"),
    (config.KubernetesConfig, "startup_timeout", cluster.start_kubecluster, "startup_timeout"),
]

#: Keys whose default is the experiment's own choice, deliberately not the library's (why:
#: the comment at the key in daskflow/config/_models.py).
OWN = [
    (config.EvaluateConfig, "metrics", evaluation.evaluate_ranking, "metrics"),
    (config.ClassifyConfig, "bootstrap", evaluation.evaluate_classifier, "n_resamples"),
]


def _default(function: Any, parameter: str) -> Any:
    default = inspect.signature(function).parameters[parameter].default
    assert default is not inspect.Parameter.empty, f"{function.__name__}() has no default for {parameter}"
    return default


def _label(case: tuple[Any, ...]) -> str:
    return f"{case[0].__name__}.{case[1]}={case[2].__name__}.{case[3]}"


@pytest.mark.parametrize("case", SHARED, ids=_label)
def test_config_defaults_are_the_library_defaults(case: tuple[Any, ...]) -> None:
    section, key, function, parameter = case
    ours, theirs = section.model_fields[key].default, _default(function, parameter)
    assert ours == theirs and type(ours) is type(theirs), f"config {ours!r}, library {theirs!r}"


@pytest.mark.parametrize("case", OWN, ids=_label)
def test_the_experiment_own_defaults_still_differ(case: tuple[Any, ...]) -> None:
    """Listed here as differing on purpose: a key that comes to agree belongs in SHARED."""
    section, key, function, parameter = case
    assert section.model_fields[key].default != _default(function, parameter)


@pytest.mark.parametrize(("target", "search"), [("conversion", tuning.search),
                                                 ("recommender", tuning.search_recommender)])
def test_tune_metric_defaults_to_the_search_functions(target: str, search: Any) -> None:
    spec = config.TuneConfig(target=target, params={"alpha": (1.0,)})
    assert spec.metric is None and spec.resolved_metric == _default(search, "metric")


def test_shared_keys_take_the_library_default_instead_of_writing_it() -> None:
    """A shared key's default is read from the library (library_default), not a second literal."""
    import ast

    source = inspect.getsource(config)
    tree = ast.parse(source)
    fields = {(node.name, stmt.target.id): ast.get_source_segment(source, stmt.value)
              for node in tree.body if isinstance(node, ast.ClassDef)
              for stmt in node.body if isinstance(stmt, ast.AnnAssign) and stmt.value is not None
              and isinstance(stmt.target, ast.Name)}
    for section, key, _, _ in SHARED:
        written = fields[(section.__name__, key)]
        assert written.removeprefix("Field(").lstrip().startswith("library_default("), \
            f"{section.__name__}.{key} = {written}"
