"""Secrets of a config: which values are never written or printed, and where they are hidden.

The rule (docs/security.md explains it for users). A value is secret when

1. it came from the environment through ``${env:VAR}`` (only the part that did: a
   default written in the file, or the text around the variable, stays visible) —
   the environment is where credentials are kept, and daskflow cannot tell a key from
   a path once it has been read;
2. it lies anywhere under a ``storage_options`` or ``env`` key (the keys stay visible,
   every value below them is hidden): fsspec backends and containers take credentials
   under many names (``key``, ``sas_token``, ``connection_string``, ``token`` files...);
3. it lies under a key of your own choosing (inside a free-form mapping such as
   ``model.params`` or ``schema``, or an unknown key) whose words look like a
   credential: key, secret, token, password, passwd, credential, auth, private...
   (``access_key``, ``AWS_SECRET_ACCESS_KEY``, ``apiKey`` all match). Keys that
   daskflow's schema defines (``env_from_secrets`` names Kubernetes Secrets, it does
   not hold them) and the names of ``data.sources`` / ``classify.models`` entries
   are never taken for credentials;
4. it is the password of a URL with credentials, ``scheme://user:password@host``.

Hidden values are written as ``***``. Every serialisation of a config goes through
:func:`redact` (``config_to_yaml``); free text (error messages, log lines) goes through
:meth:`Secrets.scrub`, which replaces the secret strings themselves — those of at least
:data:`MIN_SCRUB_LENGTH` characters, and not a location read from the environment
(:data:`LOCATION_KEYS`), which messages and the resume hint must name.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, get_args, get_origin

from pydantic import BaseModel

__all__ = ["REDACTED", "Secrets", "find_secrets", "is_credential_key", "redact", "redact_data",
           "redacting"]

#: What a hidden value is replaced with.
REDACTED = "***"

#: Free text is scrubbed of secret strings at least this long: shorter ones cannot be told
#: apart from ordinary words and numbers (and are not credentials in practice). Structured
#: output (config.yaml, the report, ``daskflow validate``) hides them whatever their length.
MIN_SCRUB_LENGTH = 4

#: Keys whose every value is hidden (rule 2).
SECRET_SECTIONS = frozenset({"storage_options", "env"})

#: Schema keys that hold a location (a path, URL or address): see :func:`find_secrets`.
LOCATION_KEYS = frozenset({"uri", "path", "dir", "features_uri", "address", "dashboard_address",
                           "checkpoint_dir"})

#: Words of a key name that mark it as a credential (rule 3).
CREDENTIAL_WORDS = frozenset({
    "key", "keys", "apikey", "secret", "secrets", "token", "tokens", "password", "passwords",
    "passwd", "pwd", "passphrase", "credential", "credentials", "creds", "auth", "authorization",
    "private", "cookie", "signature", "sas",
})
#: ... and pieces that mark it even when glued to other words (``accesskey``, ``authtoken``).
_CREDENTIAL_PIECES = ("secret", "token", "passw", "credential", "apikey", "accesskey", "privatekey")

_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
#: ``scheme://user:password@`` (rule 4); the user name stays visible.
_URL_PASSWORD = re.compile(r"(?<=://)([^/@:\s]*):([^/@\s]+)@")

Path_ = tuple[str, ...]


def is_credential_key(name: str) -> bool:
    """Whether a key named ``name`` holds a credential by its name (rule 3)."""
    lowered = name.lower()
    if any(piece in lowered for piece in _CREDENTIAL_PIECES):
        return True
    return any(word.lower() in CREDENTIAL_WORDS for word in _WORDS.findall(name))


@dataclass(frozen=True)
class Secrets:
    """What one loaded config must never show.

    Attributes
    ----------
    from_env : key path -> (the resolved value, the value with every part that came
        from the environment as ``***``), for each value ``${env:...}`` filled in.
    values : the secret strings themselves, for scrubbing free text.
    """

    from_env: Mapping[Path_, tuple[str, str]] = field(default_factory=dict)
    values: frozenset[str] = frozenset()

    def scrub(self, text: str) -> str:
        """``text`` with every secret string (and every URL password) replaced by ``***``."""
        for value in sorted(self.values, key=len, reverse=True):
            text = text.replace(value, REDACTED)
        return _URL_PASSWORD.sub(rf"\1:{REDACTED}@", text)


def find_secrets(raw: Any, model: type[BaseModel], from_env: Mapping[Path_, tuple[str, str]],
                 env_values: Mapping[Path_, list[str]] | None = None) -> Secrets:
    """The :class:`Secrets` of ``raw``, the plain data ``model`` is validated from.

    ``from_env`` and ``env_values`` (per key path, the strings read from the environment)
    come from interpolation; the credential values are found by walking ``raw`` along
    ``model``. A location read from the environment (a key in :data:`LOCATION_KEYS`) is
    hidden in serialised configs but not scrubbed from free text: a message about a
    missing path or an unreachable scheduler must name it (its URL password is still
    scrubbed), and so must the resume hint a run prints.
    """
    found: set[str] = set()
    for path, pieces in (env_values or {}).items():
        if not (path and path[-1] in LOCATION_KEYS and not _annotation_at(model, path)[1]):
            found.update(pieces)
    _walk(raw, model, (), Secrets(from_env), found)
    values = {v for value in found for v in (value, repr(value)[1:-1]) if len(v) >= MIN_SCRUB_LENGTH}
    return Secrets(dict(from_env), frozenset(values))


def redact(data: Any, model: Any, secrets: Secrets, path: Path_ = ()) -> Any:
    """A copy of plain ``data`` (found at ``path`` of ``model``) with its secrets as ``***``."""
    annotation, hidden = _annotation_at(model, path)
    return _walk(data, annotation, path, secrets, None, hidden)


def redact_data(data: Any, secrets: Secrets) -> Any:
    """Plain data that is not a config (metrics, summaries) with its secrets hidden.

    With no schema to go by, every key is a key of your own choosing (rules 2 to 4), and
    every string is scrubbed of the config's secret strings.
    """
    hidden = _walk(data, Any, (), Secrets(), None)
    return _map_strings(hidden, secrets.scrub)


@contextlib.contextmanager
def redacting(secrets: Secrets) -> Iterator[None]:
    """Hide ``secrets`` from the ``daskflow`` log and from any exception raised inside.

    Log records are scrubbed as they are made (so every handler — the console, a run's
    ``run.log`` — gets the scrubbed text); an exception escaping the block, and the ones
    it was raised from, have their messages scrubbed before they are printed.
    """
    logger = logging.getLogger("daskflow")
    scrubber = _ScrubRecords(secrets)
    logger.addFilter(scrubber)
    try:
        yield
    except BaseException as exc:
        _scrub_exception(exc, secrets)
        raise
    finally:
        logger.removeFilter(scrubber)


# -- walking data along the models ------------------------------------------------------


def _walk(value: Any, annotation: Any, path: Path_, secrets: Secrets, found: set[str] | None,
          hidden: bool = False) -> Any:
    """``value`` with its secrets hidden; adds the hidden strings to ``found`` if given."""
    if path in secrets.from_env:
        resolved, shown = secrets.from_env[path]
        return shown if value == resolved else REDACTED
    if isinstance(value, dict):
        walked = {}
        for key, item in value.items():
            inner, secret = _child(annotation, str(key), hidden)
            walked[key] = _walk(item, inner, (*path, str(key)), secrets, found, secret)
        return walked
    if isinstance(value, list | tuple):
        inner = _item_annotation(annotation)
        return [_walk(item, inner, (*path, str(index)), secrets, found, hidden)
                for index, item in enumerate(value)]
    if hidden:
        if isinstance(value, str) and found is not None:
            found.add(value)
        return value if value is None else REDACTED
    if isinstance(value, str):
        if found is not None:
            found.update(match.group(2) for match in _URL_PASSWORD.finditer(value))
        return _URL_PASSWORD.sub(rf"\1:{REDACTED}@", value)
    return value


def _child(annotation: Any, key: str, hidden: bool) -> tuple[Any, bool]:
    """The annotation of ``key`` inside a mapping of type ``annotation``, and whether it is secret."""
    if hidden:
        return Any, True
    model = _unwrap(annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        field_info = _field(model, key)
        if field_info is not None:  # a key of the schema: secret only if it is a secret section
            return field_info.annotation, key in SECRET_SECTIONS
        return Any, _secret_key(key)  # an unknown key (in an error message)
    if get_origin(model) is dict:
        inner = get_args(model)[1]
        named_sections = isinstance(_unwrap(inner), type) and issubclass(_unwrap(inner), BaseModel)
        return inner, not named_sections and _secret_key(key)
    return Any, _secret_key(key)


def _secret_key(key: str) -> bool:
    return key in SECRET_SECTIONS or is_credential_key(key)


def _field(model: type[BaseModel], key: str) -> Any:
    return next((f for name, f in model.model_fields.items() if key in (name, f.alias)), None)


def _item_annotation(annotation: Any) -> Any:
    args = [a for a in get_args(_unwrap(annotation)) if a is not Ellipsis]
    return args[0] if len(args) == 1 else Any


def _annotation_at(model: Any, path: Path_) -> tuple[Any, bool]:
    """The annotation of the value at ``path`` of ``model``, and whether it is secret."""
    annotation, hidden = model, False
    for part in path:
        inner = _unwrap(annotation)
        if get_origin(inner) in (list, tuple):
            annotation = _item_annotation(inner)
        else:
            annotation, hidden = _child(annotation, part, hidden)
    return annotation, hidden


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X``; ``Annotated[X, ...]`` -> ``X``."""
    while hasattr(annotation, "__metadata__"):
        annotation = get_args(annotation)[0]
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) not in (None, dict, list, tuple) and len(args) == 1:
        return _unwrap(args[0])
    return annotation


def _map_strings(value: Any, function: Any) -> Any:
    if isinstance(value, dict):
        return {key: _map_strings(item, function) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_map_strings(item, function) for item in value]
    return function(value) if isinstance(value, str) else value


# -- free text ----------------------------------------------------------------------------


class _ScrubRecords(logging.Filter):
    """Scrubs each record of the ``daskflow`` logger before any handler formats it."""

    def __init__(self, secrets: Secrets) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.secrets.scrub(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.secrets.scrub(record.exc_text)
        return True


def _scrub_exception(exc: BaseException, secrets: Secrets) -> None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:  # the whole chain, once each
        seen.add(id(current))
        with contextlib.suppress(Exception):  # an exception type that refuses new args keeps its own
            current.args = tuple(secrets.scrub(a) if isinstance(a, str) else a for a in current.args)
        current = current.__cause__ or current.__context__
