"""Config loading: validation, overrides, interpolation, error messages."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from daskflow import ConfigError
from daskflow.config import Config, config_to_yaml, load_config, parse_overrides

MINIMAL = """\
experiment:
  name: demo
data:
  sources:
    listens:
      uri: data/listens
      filters: [[date, ">=", "2026-01-02"], [user_id, in, [a, b]]]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "experiment.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_minimal_config_gets_documented_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.cluster.kind == "local"
    assert config.cluster.n_workers == 2
    assert config.model.name == "popularity"
    assert config.evaluate.k == (5, 10)
    assert config.experiment.stages == ("kpis", "interactions", "train", "evaluate")


def test_filters_become_tuples_dask_accepts(tmp_path: Path) -> None:
    source = load_config(write(tmp_path, MINIMAL)).data.sources["listens"]
    assert source.filters == [("date", ">=", "2026-01-02"), ("user_id", "in", ["a", "b"])]


def test_models_are_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    with pytest.raises(Exception, match="frozen"):
        config.cluster.n_workers = 3  # type: ignore[misc]


def test_unknown_key_names_path_line_and_allowed_keys(tmp_path: Path) -> None:
    text = MINIMAL + "      colums: [a]\n"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    message = str(info.value)
    assert "unknown key 'data.sources.listens.colums' (data.sources.listens.colums, line 8)" in message
    assert "allowed keys here: uri, format, columns, filters, storage_options, schema" in message


def test_unknown_top_level_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'trainer' \(trainer, line 8\); allowed keys "
                                          r"here: experiment, cluster, data, features, model"):
        load_config(write(tmp_path, MINIMAL + "trainer: {}\n"))


def test_wrong_type_names_key_value_and_line(tmp_path: Path) -> None:
    text = MINIMAL + "cluster:\n  n_workers: lots\n"
    with pytest.raises(ConfigError, match=r"cluster.n_workers = 'lots' is invalid \(cluster.n_workers, "
                                          r"line 9\): Input should be a valid integer"):
        load_config(write(tmp_path, text))


def test_out_of_range_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cluster.n_workers = 0 is invalid .*greater than or equal to 1"):
        load_config(write(tmp_path, MINIMAL), ["cluster.n_workers=0"])


def test_unknown_model_lists_available(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model.name = 'bert' is invalid \(model.name, set on the "
                                          r"command line\): unknown model 'bert'; available: als, "
                                          r"popularity"):
        load_config(write(tmp_path, MINIMAL), ["model.name=bert"])


def test_missing_required_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing required key 'data'"):
        load_config(write(tmp_path, "experiment: {name: x}\n"))


def test_bad_filter_operator(tmp_path: Path) -> None:
    text = MINIMAL.replace('">="', '"~="')
    with pytest.raises(ConfigError, match=r"unknown filter operator '~=' .*allowed: =, ==, !="):
        load_config(write(tmp_path, text))


def test_interactions_source_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="features.interactions.source is 'plays' but data.sources "
                                          "has only listens"):
        load_config(write(tmp_path, MINIMAL), ["features.interactions.source=plays"])


def test_overrides_parse_yaml_values(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL),
                         ["cluster.n_workers=3", "evaluate.k=[1,20]", "cluster.processes=false",
                          "experiment.seed=11"])
    assert config.cluster.n_workers == 3
    assert config.evaluate.k == (1, 20)
    assert config.cluster.processes is False
    assert config.experiment.seed == 11


@pytest.mark.parametrize("override", ["n_workers", "=3", "cluster..n=3", " =1"])
def test_bad_override_syntax(override: str) -> None:
    with pytest.raises(ConfigError, match=r"bad override .*expected key.sub=value"):
        parse_overrides([override])


def test_override_into_a_scalar_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot override experiment.name.x: experiment.name is a str"):
        load_config(write(tmp_path, MINIMAL), ["experiment.name.x=1"])


def test_env_interpolation_with_and_without_default(tmp_path: Path) -> None:
    text = MINIMAL.replace("uri: data/listens", "uri: ${env:LAKE}/listens") + \
        "cluster: {memory_limit: '${env:MEM,3GiB}'}\n"
    config = load_config(write(tmp_path, text), environ={"LAKE": "s3://bucket"})
    assert config.data.sources["listens"].uri == "s3://bucket/listens"
    assert config.cluster.memory_limit == "3GiB"


def test_unset_env_variable_is_named(tmp_path: Path) -> None:
    text = MINIMAL.replace("uri: data/listens", "uri: ${env:LAKE}/listens")
    with pytest.raises(ConfigError, match=r"environment variable LAKE is not set \(data.sources.listens.uri, "
                                          r"line 6\): set it, or give a default as \$\{env:LAKE,default\}"):
        load_config(write(tmp_path, text), environ={})


def test_override_may_use_the_environment(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), ["output.dir=${env:OUT}"], environ={"OUT": "/x"})
    assert config.output.dir == "/x"


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file .*nope.yaml' does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"is not valid YAML at line 2, column 2: expected .,. or .\]."):
        load_config(write(tmp_path, "a: [1\nb: 2\n"))
    with pytest.raises(ConfigError, match="is empty"):
        load_config(write(tmp_path, "# nothing\n"))


def test_remote_cluster_needs_address_and_address_implies_remote(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), ["cluster.address=tcp://127.0.0.1:8786"])
    assert config.cluster.kind == "remote"
    with pytest.raises(ConfigError, match="kind 'remote' needs cluster.address"):
        load_config(write(tmp_path, MINIMAL), ["cluster.kind=remote"])


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), ["cluster.n_workers=3"])
    again = load_config(write(tmp_path, config_to_yaml(config)))
    assert again == config
    assert isinstance(again, Config)


def test_shipped_configs_are_valid() -> None:
    for path in sorted(Path(__file__).parents[2].joinpath("configs").glob("*.yaml")):
        load_config(path)
