"""Reading an experiment file: YAML, environment interpolation, overrides, validation.

Layers apply in a fixed order: the YAML file, then ``key.sub=value`` overrides from the
command line, then ``${env:VAR}`` / ``${env:VAR,default}`` interpolation (so an override
may itself use the environment). Any error names the key path, the bad value, what is
allowed, and the YAML line when the key came from the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from daskflow._errors import ConfigError
from daskflow.config._models import Config

__all__ = ["load_config", "parse_overrides", "config_to_yaml"]

_ENV_PATTERN = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?:,([^}]*))?\}")
_KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")

Path_ = tuple[str, ...]


def load_config(path: str | os.PathLike[str], overrides: Iterable[str] = (),
                environ: Mapping[str, str] | None = None) -> Config:
    """Load, override, interpolate and validate an experiment file.

    Parameters
    ----------
    path
        The YAML experiment file.
    overrides
        ``key.sub=value`` strings; values are parsed as YAML scalars or flow
        collections (``k=[5,10]``).
    environ
        Environment for ``${env:...}`` interpolation; defaults to ``os.environ``.

    Raises
    ------
    ConfigError
        For an unreadable file, bad YAML, a bad override, an unset variable or a
        value the schema rejects.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist: pass the path of an "
                          "experiment YAML file, e.g. configs/quickstart.yaml") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}") from exc
    raw, lines = _parse_yaml(text, str(path))
    for key_path, value in parse_overrides(overrides):
        _set_path(raw, key_path, value)
        lines[key_path] = "command line"
    raw = _interpolate(raw, (), os.environ if environ is None else environ, lines)
    return validate_config(raw, lines, source=str(path))


def validate_config(raw: Any, lines: Mapping[Path_, int | str] | None = None,
                    source: str = "<config>") -> Config:
    """Validate a plain mapping as a :class:`Config`, with key-path error messages."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source} must be a YAML mapping of sections (experiment, data, ...), "
                          f"got {type(raw).__name__}")
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        problems = [_describe(error, lines or {}, raw) for error in exc.errors()]
        header = f"invalid config {source}" + (":" if len(problems) == 1 else f" ({len(problems)} problems):")
        raise ConfigError("\n  ".join([header, *problems])) from None


def parse_overrides(overrides: Iterable[str]) -> list[tuple[Path_, Any]]:
    """Parse ``key.sub=value`` strings into (key path, value) pairs."""
    parsed = []
    for override in overrides:
        key, sep, value = override.partition("=")
        key = key.strip()
        if not sep or not _KEY_PATTERN.match(key):
            raise ConfigError(f"bad override {override!r}: expected key.sub=value, "
                              "e.g. cluster.n_workers=4 or evaluate.k=[5,10]")
        try:
            parsed_value = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            parsed_value = value  # not YAML: keep the literal string
        parsed.append((tuple(key.split(".")), parsed_value))
    return parsed


def config_to_yaml(config: Config) -> str:
    """The resolved configuration as YAML, as saved beside every run."""
    data = config.model_dump(mode="json", by_alias=True, exclude_none=False)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


# -- YAML with line numbers ------------------------------------------------------------


def _parse_yaml(text: str, source: str) -> tuple[Any, dict[Path_, int | str]]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source} is not valid YAML{where}: {problem}") from None
    if node is None:
        raise ConfigError(f"{source} is empty: expected sections experiment, data, ...")
    lines: dict[Path_, int | str] = {}
    _record_lines(node, (), lines)
    return yaml.safe_load(text), lines


def _record_lines(node: yaml.Node, path: Path_, lines: dict[Path_, int | str]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*path, str(key_node.value))
            lines[child] = key_node.start_mark.line + 1
            _record_lines(value_node, child, lines)
            lines[child] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(item, (*path, str(index)), lines)


# -- overrides and interpolation --------------------------------------------------------


def _set_path(raw: dict[str, Any], key_path: Path_, value: Any) -> None:
    node = raw
    for depth, key in enumerate(key_path[:-1]):
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            where = ".".join(key_path[: depth + 1])
            raise ConfigError(f"cannot override {'.'.join(key_path)}: {where} is a "
                              f"{type(child).__name__}, not a section")
        node = child
    node[key_path[-1]] = value


def _interpolate(value: Any, path: Path_, environ: Mapping[str, str],
                 lines: Mapping[Path_, int | str]) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, (*path, str(k)), environ, lines) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*path, str(i)), environ, lines) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise ConfigError(f"environment variable {name} is not set ({_where(path, lines)}): "
                          f"set it, or give a default as ${{env:{name},default}}")

    result = _ENV_PATTERN.sub(substitute, value)
    if "${" in result:
        raise ConfigError(f"bad interpolation {value!r} ({_where(path, lines)}): expected "
                          "${env:VAR} or ${env:VAR,default}")
    return result


# -- error messages ---------------------------------------------------------------------


def _where(path: Path_, lines: Mapping[Path_, int | str]) -> str:
    key = ".".join(path) or "<top level>"
    line = lines.get(path)
    if line == "command line":
        return f"{key}, set on the command line"
    return f"{key}, line {line}" if line is not None else key


def _describe(error: Mapping[str, Any], lines: Mapping[Path_, int | str], raw: Any) -> str:
    path = tuple(str(part) for part in error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(path[:-1])
        hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
        return f"unknown key '{'.'.join(path)}' ({_where(path, lines)}){hint}"
    if kind == "missing":
        return f"missing required key '{'.'.join(path)}'"
    message = error["msg"].removeprefix("Value error, ")
    if not path:  # whole-config checks carry their key paths in the message
        return message
    value = error.get("input")
    return f"{'.'.join(path)} = {value!r} is invalid ({_where(path, lines)}): {message}"


def _allowed_keys(path: Path_) -> list[str]:
    """Keys a section accepts, found by walking the models along ``path``."""
    model: Any = Config
    for part in path:
        model = _unwrap(model)
        if isinstance(model, type) and issubclass(model, BaseModel):
            field = next((f for name, f in model.model_fields.items()
                          if part in (name, f.alias)), None)
            if field is None:
                return []
            model = field.annotation
        elif get_origin(model) is dict:
            model = get_args(model)[1]
        else:
            return []
    model = _unwrap(model)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [f.alias or name for name, f in model.model_fields.items()]
    return []


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X``."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) not in (None, dict) and len(args) == 1:
        return args[0]
    return annotation
