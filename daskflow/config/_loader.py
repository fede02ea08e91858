"""Reading an experiment file: YAML, environment interpolation, overrides, validation.

Layers apply in a fixed order: the YAML file, then ``key.sub=value`` overrides from the
command line, then ``${env:VAR}`` / ``${env:VAR,default}`` interpolation (so an override
may itself use the environment). Any error names the key path, the bad value, what is
allowed, and the YAML line when the key came from the file.

The YAML is plain data and bounded: UTF-8 text of at most :data:`MAX_FILE_BYTES`, no tags
beyond YAML's own scalars and collections (``!!python/...`` is refused, not executed), no
duplicate keys, at most :data:`MAX_DEPTH` levels of nesting, and aliases that add at most
:data:`ALIAS_BUDGET` nodes (a "billion laughs" file of 1 KB would otherwise expand to
gigabytes). Secrets (``daskflow.config._redact``) are hidden in everything the loader
prints and in :func:`config_to_yaml`.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from daskflow._errors import ConfigError
from daskflow.config._kinds import resolve_overridden_kind
from daskflow.config._models import Config
from daskflow.config._redact import REDACTED, Secrets, find_secrets, redact

__all__ = ["load_config", "load_config_data", "parse_overrides", "config_to_yaml", "ALIAS_BUDGET",
           "MAX_DEPTH", "MAX_FILE_BYTES"]

_ENV_PATTERN = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?:,([^}]*))?\}")
_KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")

#: An experiment file is a few KB; a bigger one is a mistake (or an attack on the parser).
MAX_FILE_BYTES = 1 << 20
#: Levels of nesting a config may have (the schema itself needs about 8).
MAX_DEPTH = 50
#: Nodes that aliases (``*name``) may add to a file in all, counting what they repeat.
ALIAS_BUDGET = 10_000

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
        For an unreadable, binary or oversized file, bad YAML (including tags, duplicate
        keys, deep nesting and alias bombs), a bad override, an unset variable or a value
        the schema rejects. No message shows a secret.
    """
    path = Path(path)
    raw, lines = _parse_yaml(_read_text(path), str(path))
    return _resolve(raw, lines, overrides, environ, str(path))


def load_config_data(data: Mapping[str, Any], overrides: Iterable[str] = (),
                     environ: Mapping[str, str] | None = None, source: str = "<mapping>") -> Config:
    """:func:`load_config` for plain data: the mapping a YAML experiment file holds.

    ``data`` is not changed; overrides and ``${env:...}`` interpolation apply as for a file,
    and so do the secrets rules. ``source`` names the data in error messages.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source} must be a mapping of sections (experiment, data, ...), got "
                          f"{type(data).__name__}")
    raw = copy.deepcopy(dict(data))
    return _resolve(raw, {}, overrides, environ, source)


def _resolve(raw: Any, lines: dict[Path_, int | str], overrides: Iterable[str],
             environ: Mapping[str, str] | None, source: str) -> Config:
    """Overrides, then the cluster kind they imply, then interpolation, then validation."""
    overridden = set()
    for key_path, value in parse_overrides(overrides):
        _set_path(raw, key_path, value)
        lines[key_path] = "command line"
        overridden.add(key_path)
    if isinstance(raw, dict) and isinstance(raw.get("cluster"), dict):
        # cluster.address=... on a `kind: local` file means that scheduler (daskflow.config._kinds)
        resolve_overridden_kind(raw["cluster"], overridden)
    from_env: dict[Path_, tuple[str, str]] = {}
    env_values: dict[Path_, list[str]] = {}
    raw = _interpolate(raw, (), os.environ if environ is None else environ, lines, from_env, env_values)
    return validate_config(raw, lines, source=source, secrets=find_secrets(raw, Config, from_env, env_values))


def validate_config(raw: Any, lines: Mapping[Path_, int | str] | None = None,
                    source: str = "<config>", secrets: Secrets | None = None) -> Config:
    """Validate a plain mapping as a :class:`Config`, with key-path error messages.

    ``secrets`` (what :func:`load_config` found) are hidden in the messages and kept on the
    config for :func:`config_to_yaml`; by default they are found in ``raw`` itself.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source} must be a YAML mapping of sections (experiment, data, ...), "
                          f"got {type(raw).__name__}")
    if secrets is None:
        secrets = find_secrets(raw, Config, {})
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        problems = [_describe(error, lines or {}, secrets) for error in exc.errors()]
        header = f"invalid config {source}" + (":" if len(problems) == 1 else f" ({len(problems)} problems):")
        raise ConfigError(secrets.scrub("\n  ".join([header, *problems]))) from None
    config._secrets = secrets
    return config


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
            parsed_value = _load_yaml(value, f"override {key}")[0] if value.strip() else ""
        except yaml.YAMLError:
            parsed_value = value  # not YAML: keep the literal string
        parsed.append((tuple(key.split(".")), parsed_value))
    return parsed


def config_to_yaml(config: Config, *, redact_secrets: bool = True) -> str:
    """The resolved configuration as YAML, as saved beside every run and printed by validate.

    Secrets are ``***`` (docs/security.md): this is the one place a config is turned into
    text. ``redact_secrets=False`` gives the raw form, for comparisons in memory only;
    never write or print it.
    """
    data = config.model_dump(mode="json", by_alias=True, exclude_none=False)
    if redact_secrets:
        data = redact(data, Config, config.secrets)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


# -- YAML with line numbers ------------------------------------------------------------


def _read_text(path: Path) -> str:
    """The file as text: it must exist, be small and be UTF-8 (not a binary file)."""
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist: pass the path of an "
                          "experiment YAML file, e.g. configs/quickstart.yaml") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}") from exc
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"config file {str(path)!r} is larger than {MAX_FILE_BYTES:,} bytes: an "
                          "experiment file is a few KB of YAML; pass the experiment file, not data")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise ConfigError(f"config file {str(path)!r} is a binary file, not YAML text: it has a NUL "
                          f"byte at offset {nul}; pass the experiment YAML file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text: byte 0x{data[exc.start]:02x} at "
                          f"offset {exc.start} (line {line}) is not valid UTF-8; save the file as "
                          "UTF-8") from None


def _parse_yaml(text: str, source: str) -> tuple[Any, dict[Path_, int | str]]:
    try:
        raw, lines = _load_yaml(text, source)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML{_yaml_where(exc, text)}: "
                          f"{_yaml_problem(exc)}") from None
    if raw is None:
        raise ConfigError(f"{source} is empty: expected sections experiment, data, ...")
    return raw, lines


def _load_yaml(text: str, source: str) -> tuple[Any, dict[Path_, int | str]]:
    """Compose (with the limits of :class:`_Loader`), check keys, record lines, construct.

    Raises ``yaml.YAMLError`` for text that is not YAML, :class:`ConfigError` for YAML
    that daskflow refuses.
    """
    loader = _Loader(text, source)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        lines: dict[Path_, int | str] = {}
        _record_lines(node, source, lines)
        return loader.construct_document(node), lines
    except RecursionError:  # a limit above should have caught it first
        raise ConfigError(f"{source} is nested too deeply: expected at most {MAX_DEPTH} levels") from None
    finally:
        loader.dispose()


#: Tags a config may carry explicitly: YAML's own scalars and collections.
_ALLOWED_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in
                          ("str", "int", "float", "bool", "null", "map", "seq", "timestamp"))


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses what a config never needs and bounds what it builds.

    It counts, while composing, the nodes every alias adds (an alias of a node that
    already holds aliases repeats all of them) and refuses a file past
    :data:`ALIAS_BUDGET`; refuses nesting deeper than :data:`MAX_DEPTH` (the composer
    recurses per level), recursive aliases, and tags beyond YAML's plain types.
    """

    def __init__(self, text: str, source: str) -> None:
        super().__init__(text)
        self.source = source
        self.depth = 0
        self.added_by_aliases = 0
        self.sizes: dict[int, int] = {}
        self.open_anchors: set[str] = set()

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        where = f"line {event.start_mark.line + 1}, column {event.start_mark.column + 1}"
        if isinstance(event, yaml.AliasEvent):
            node = self.anchors.get(event.anchor)
            if node is not None:
                if event.anchor in self.open_anchors:
                    raise ConfigError(f"{self.source}: alias *{event.anchor} at {where} refers to a "
                                      "section that contains it (a recursive alias): write the "
                                      "values out instead")
                size = self._size(node)
                self.added_by_aliases += size
                if self.added_by_aliases > ALIAS_BUDGET:
                    raise ConfigError(
                        f"{self.source}: alias *{event.anchor} at {where} repeats {size:,} YAML "
                        f"node(s), taking what the file's aliases add to {self.added_by_aliases:,}, "
                        f"past the limit of {ALIAS_BUDGET:,} (an alias bomb?): expected aliases "
                        "that repeat small sections; write the values out")
            return super().compose_node(parent, index)
        tag = getattr(event, "tag", None)
        if tag not in (None, "!") and tag not in _ALLOWED_TAGS:
            shown = tag.replace("tag:yaml.org,2002:", "!!")
            raise ConfigError(f"{self.source}: tag {shown} at {where} is not allowed: a config holds "
                              "plain YAML values (strings, numbers, booleans, null, lists and "
                              f"mappings) and daskflow never constructs objects; remove {shown}")
        if self.depth >= MAX_DEPTH:
            raise ConfigError(f"{self.source} is nested more than {MAX_DEPTH} levels deep at {where}: "
                              "expected the few levels of the config's sections; flatten it")
        anchor = getattr(event, "anchor", None)
        self.depth += 1
        if anchor is not None:
            self.open_anchors.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1
            self.open_anchors.discard(anchor)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except ConfigError:
            raise
        except (ValueError, TypeError, OverflowError) as exc:  # e.g. an integer of 100,000 digits
            problem = str(exc).split(";")[0]
            raise ConfigError(f"{self.source}: the value at line {node.start_mark.line + 1}, column "
                              f"{node.start_mark.column + 1} cannot be read ({problem}): write it as "
                              "a quoted string or a smaller number") from None

    def _size(self, node: yaml.Node) -> int:
        """Nodes of ``node`` with every alias inside it expanded (memoised per node)."""
        known = self.sizes.get(id(node))
        if known is None:
            if isinstance(node, yaml.MappingNode):
                known = 1 + sum(self._size(k) + self._size(v) for k, v in node.value)
            elif isinstance(node, yaml.SequenceNode):
                known = 1 + sum(self._size(item) for item in node.value)
            else:
                known = 1
            self.sizes[id(node)] = known
        return known


# `=` is a YAML "value" key by the 1.1 resolver; in a filter it is the equality operator.
_Loader.add_constructor("tag:yaml.org,2002:value", yaml.SafeLoader.construct_yaml_str)


def _record_lines(root: yaml.Node, source: str, lines: dict[Path_, int | str]) -> None:
    """Line of every key path, and no key twice in one mapping.

    Iterative, and each node is entered once: a node an alias repeats keeps the paths of
    its first appearance (so the walk is linear in the file, whatever the aliases).
    """
    visited: set[int] = set()
    stack: list[tuple[yaml.Node, Path_]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        lines.setdefault(path, node.start_mark.line + 1)
        if id(node) in visited:
            continue
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                line = key_node.start_mark.line + 1
                child = (*path, str(key_node.value))
                key = (key_node.tag, key_node.value)
                if key in first:
                    both = f"lines {first[key]} and {line}" if first[key] != line else f"line {line}, twice"
                    raise ConfigError(f"duplicate key '{'.'.join(child)}' in {source} at {both}: YAML "
                                      "would silently keep only the last value; keep one of them")
                first[key] = line
                lines[child] = line
                stack.append((value_node, child))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                stack.append((item, (*path, str(index))))


def _yaml_where(exc: yaml.YAMLError, text: str) -> str:
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return f" at line {mark.line + 1}, column {mark.column + 1}"
    position = getattr(exc, "position", None)  # a ReaderError: a character YAML does not allow
    if isinstance(position, int):
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        return f" at line {line}, column {column}"
    return ""


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.reader.ReaderError):
        return f"character U+{exc.character:04X} is not allowed in YAML text; remove it"
    if "single document" in str(getattr(exc, "context", "")):
        return "a second document (---) begins here: expected one experiment per file; remove it"
    return getattr(exc, "problem", None) or str(exc)


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


def _interpolate(value: Any, path: Path_, environ: Mapping[str, str], lines: Mapping[Path_, int | str],
                 from_env: dict[Path_, tuple[str, str]], env_values: dict[Path_, list[str]]) -> Any:
    """``value`` with ``${env:...}`` filled in; records what came from the environment.

    ``from_env`` gets, per key path, the resolved value and the value as it may be shown
    (the environment's parts as ``***``); ``env_values`` the strings read from it.
    """
    if isinstance(value, dict):
        return {k: _interpolate(v, (*path, str(k)), environ, lines, from_env, env_values)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*path, str(i)), environ, lines, from_env, env_values)
                for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value
    used_environment = False

    def substitute(match: re.Match[str], shown: bool = False) -> str:
        nonlocal used_environment
        name, default = match.group(1), match.group(2)
        if name in environ:
            used_environment = True
            if not shown:
                env_values.setdefault(path, []).append(environ[name])
            return REDACTED if shown else environ[name]
        if default is not None:
            return default
        raise ConfigError(f"environment variable {name} is not set ({_where(path, lines)}): "
                          f"set it, or give a default as ${{env:{name},default}}")

    result = _ENV_PATTERN.sub(substitute, value)
    if "${" in result:
        raise ConfigError(f"bad interpolation {value!r} ({_where(path, lines)}): expected "
                          "${env:VAR} or ${env:VAR,default}")
    if used_environment:
        from_env[path] = (result, _ENV_PATTERN.sub(lambda m: substitute(m, shown=True), value))
    return result


# -- error messages ---------------------------------------------------------------------


def _where(path: Path_, lines: Mapping[Path_, int | str]) -> str:
    key = ".".join(path) or "<top level>"
    line = lines.get(path)
    if line == "command line":
        return f"{key}, set on the command line"
    return f"{key}, line {line}" if line is not None else key


def _describe(error: Mapping[str, Any], lines: Mapping[Path_, int | str], secrets: Secrets) -> str:
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
    if isinstance(value, dict):  # a whole section: its check names the keys, the dict adds noise
        return f"{'.'.join(path)} is invalid ({_where(path, lines)}): {message}"
    shown = redact(value, Config, secrets, path)
    return f"{'.'.join(path)} = {shown!r} is invalid ({_where(path, lines)}): {message}"


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
