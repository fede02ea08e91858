"""Which config values are secret, and that every way out of the config hides them."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest
import yaml

from daskflow import ConfigError, DataError
from daskflow.config import config_to_yaml, load_config, redact_data, redacting
from daskflow.config._redact import is_credential_key

BASE = """\
experiment: {name: demo, description: "${env:NOTE,written in the file}"}
data:
  sources:
    listens:
      uri: "${env:LAKE}/listens"
      storage_options: {key: "${env:KEY}", client_kwargs: {endpoint_url: "http://minio:9000"}}
      schema: {user_id: string, auth_token: string}
    tokens:
      uri: data/tokens
model: {name: als, params: {n_factors: 4}}
cluster:
  kind: kubernetes
  kubernetes: {env: {AWS_REGION: eu-north-1}, env_from_secrets: [s3-credentials]}
"""
ENV = {"KEY": "AKIA-redact-unit-1", "LAKE": "/srv/lake"}


def load(tmp_path: Path, text: str = BASE, environ: dict[str, str] | None = None,
         overrides: tuple[str, ...] = ()) -> object:
    path = tmp_path / "experiment.yaml"
    path.write_text(textwrap.dedent(text))
    return load_config(path, overrides, environ=ENV if environ is None else environ)


@pytest.mark.parametrize("name", ["key", "secret", "token", "password", "passwd", "pwd", "credentials",
                                  "auth", "Authorization", "private_key_id", "access_key", "accessKey",
                                  "AWS_SECRET_ACCESS_KEY", "sas_token", "apikey", "api_key", "authtoken",
                                  "client_secret", "session_token", "connection_string_password"])
def test_credential_like_names(name: str) -> None:
    assert is_credential_key(name)


@pytest.mark.parametrize("name", ["uri", "user_id", "endpoint_url", "region_name", "n_factors", "monkey",
                                  "keyboard", "author", "tokenizer_name"[:0] + "turkey", "auc"])
def test_ordinary_names(name: str) -> None:
    assert not is_credential_key(name)


def test_config_yaml_hides_secrets_and_keeps_the_rest(tmp_path: Path) -> None:
    saved = yaml.safe_load(config_to_yaml(load(tmp_path)))
    listens = saved["data"]["sources"]["listens"]
    assert listens["uri"] == "***/listens"  # only the part the environment gave
    assert listens["storage_options"] == {"key": "***", "client_kwargs": {"endpoint_url": "***"}}
    assert listens["schema"] == {"user_id": "string", "auth_token": "***"}
    assert saved["data"]["sources"]["tokens"]["uri"] == "data/tokens"  # a source's name is no credential
    assert saved["experiment"]["description"] == "written in the file"  # a default is not secret
    assert saved["cluster"]["kubernetes"]["env"] == {"AWS_REGION": "***"}
    assert saved["cluster"]["kubernetes"]["env_from_secrets"] == ["s3-credentials"]  # names, not values
    assert saved["model"]["params"] == {"n_factors": 4}


def test_the_raw_form_is_there_for_comparisons_in_memory(tmp_path: Path) -> None:
    raw = config_to_yaml(load(tmp_path), redact_secrets=False)
    assert "AKIA-redact-unit-1" in raw and "/srv/lake/listens" in raw


def test_url_passwords_are_hidden_everywhere(tmp_path: Path) -> None:
    config = load(tmp_path, overrides=("predict.uri=https://reader:pa55word@host/recs.parquet",))
    assert yaml.safe_load(config_to_yaml(config))["predict"]["uri"] == "https://reader:***@host/recs.parquet"
    assert config.secrets.scrub("cannot write https://reader:pa55word@host/x") == \
        "cannot write https://reader:***@host/x"


def test_free_text_keeps_locations_from_the_environment(tmp_path: Path) -> None:
    # A path from the environment is hidden in config.yaml, but messages and the resume
    # hint must still name it; credentials are scrubbed from them.
    secrets = load(tmp_path).secrets
    text = "no data at /srv/lake/listens with key AKIA-redact-unit-1 via http://minio:9000"
    assert secrets.scrub(text) == "no data at /srv/lake/listens with key *** via ***"


def test_validation_messages_hide_secrets(tmp_path: Path) -> None:
    text = BASE + "predict: {n: '${env:KEY}'}\n"
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    message = str(info.value)
    assert "predict.n = '***' is invalid (predict.n, line 14)" in message
    assert "AKIA-redact-unit-1" not in message


def test_a_bad_section_is_named_not_printed(tmp_path: Path) -> None:
    text = BASE.replace("kind: kubernetes", "kind: local\n  address: tcp://h:1") \
        .replace("AWS_REGION: eu-north-1", "TOKEN: '${env:KEY}'")
    with pytest.raises(ConfigError, match=r"cluster is invalid \(cluster, line 11\): cluster.address is "
                                          r"only used with kind 'remote'") as info:
        load(tmp_path, text)
    assert "AKIA" not in str(info.value) and "{" not in str(info.value)


def test_metrics_are_redacted_by_key_and_by_value(tmp_path: Path) -> None:
    secrets = load(tmp_path).secrets
    metrics = {"model": {"params": {"n_factors": 4, "storage_options": {"key": "AKIA-redact-unit-1"}}},
               "note": "read with AKIA-redact-unit-1", "evaluation": {"als": {"roc_auc": 0.7}}}
    assert redact_data(metrics, secrets) == {
        "model": {"params": {"n_factors": 4, "storage_options": {"key": "***"}}},
        "note": "read with ***", "evaluation": {"als": {"roc_auc": 0.7}}}


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_redacting_scrubs_the_log_and_escaping_errors(tmp_path: Path) -> None:
    secrets = load(tmp_path).secrets
    logger, collect = logging.getLogger("daskflow"), _Collect()
    previous = logger.level
    logger.addHandler(collect)
    logger.setLevel(logging.INFO)
    try:
        with pytest.raises(DataError) as info, redacting(secrets):
            logger.info("reading with %s", "AKIA-redact-unit-1")
            try:
                raise OSError("endpoint http://minio:9000 refused")
            except OSError as exc:
                raise DataError("cannot read with AKIA-redact-unit-1") from exc
        logger.info("after: %s", "AKIA-redact-unit-1")  # the filter is gone again
    finally:
        logger.removeHandler(collect)
        logger.setLevel(previous)
    assert collect.lines == ["reading with ***", "after: AKIA-redact-unit-1"]
    assert str(info.value) == "cannot read with ***"
    assert str(info.value.__cause__) == "endpoint *** refused"


def test_a_config_without_secrets_round_trips(tmp_path: Path) -> None:
    text = "experiment: {name: demo}\ndata: {sources: {listens: {uri: data/listens}}}\n"
    config = load(tmp_path, text, environ={})
    assert load(tmp_path, config_to_yaml(config), environ={}) == config
