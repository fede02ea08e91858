"""docs/configuration.md documents every key of the config models."""

from __future__ import annotations

from pathlib import Path
from types import UnionType
from typing import Union, get_args, get_origin

from pydantic import BaseModel

from daskflow.config import Config

DOC = Path(__file__).parents[2] / "docs" / "configuration.md"


def keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    found = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        found.append(key)
        union = get_origin(field.annotation) in (Union, UnionType)
        for candidate in get_args(field.annotation) if union else (field.annotation,):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                found += keys(candidate, key + ".")
            elif get_origin(candidate) is dict:  # named sections: dict[str, Section]
                inner = get_args(candidate)[1]
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    found += keys(inner, key + ".<name>.")
    return found


def test_every_key_is_documented() -> None:
    text = DOC.read_text()
    missing = [key for key in keys(Config) if f"`{key}`" not in text]
    assert missing == []


