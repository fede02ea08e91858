"""Property-based tests of ``load_config`` on odd inputs: a ConfigError or a Config, nothing else.

Random bytes, truncations and byte flips of a real config, unicode keys and values, deep
nesting, anchors and aliases, huge scalars: every input either loads or raises
:class:`ConfigError` — never another exception (which the CLI would print as a traceback
with exit 1) — within a deadline per example and a bounded amount of Python memory.
Derandomized, so CI sees the same examples every run.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daskflow import ConfigError
from daskflow.config import Config, load_config

REAL = (Path(__file__).parents[2] / "configs" / "quickstart.yaml").read_bytes()

#: Python memory one example may allocate at its peak: a config's YAML is small, and the
#: loader refuses what would expand (the alias bomb once reached 6 GB).
PEAK_BYTES = 64 * 2**20
#: Inputs up to this size are loaded under tracemalloc (which slows the pure-Python YAML
#: scanner ~50x); larger ones are bounded by the loader's 1 MiB file limit and the deadline.
TRACED_BYTES = 64 * 2**10

PROPERTIES = settings(derandomize=True, deadline=2000, max_examples=40, database=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
#: The same, with fewer examples for the slow generators (large inputs).
FEWER = settings(PROPERTIES, max_examples=15)


def load_bounded(path: Path, content: bytes) -> Config | None:
    """Load ``content`` from ``path``: a Config, or None for a ConfigError; checks the memory bound."""
    path.write_bytes(content)
    traced = len(content) <= TRACED_BYTES
    if traced:
        tracemalloc.start()
    try:
        return load_config(path, environ={})
    except ConfigError as exc:
        assert str(exc)  # a message to print
        return None
    finally:
        if traced:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            assert peak < PEAK_BYTES, f"loading {len(content)} bytes peaked at {peak:,} bytes of memory"


@pytest.fixture
def target(tmp_path: Path) -> Path:
    return tmp_path / "odd.yaml"


@PROPERTIES
@given(st.binary(max_size=2000))
def test_random_bytes(target: Path, content: bytes) -> None:
    load_bounded(target, content)


@PROPERTIES
@given(st.integers(0, len(REAL)))
def test_truncations_of_a_real_config(target: Path, end: int) -> None:
    load_bounded(target, REAL[:end])


@PROPERTIES
@given(st.lists(st.tuples(st.integers(0, len(REAL) - 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_byte_flips_of_a_real_config(target: Path, flips: list[tuple[int, int]]) -> None:
    content = bytearray(REAL)
    for position, value in flips:
        content[position] = value
    load_bounded(target, bytes(content))


#: Plain YAML values of every kind, nested; keys and strings from all of unicode.
_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=30)


@PROPERTIES
@given(_values)
def test_unicode_values_anywhere(target: Path, value: object) -> None:
    document = {"experiment": {"name": "odd", "description": value}, "data": {"sources": value},
                "model": {"name": "als", "params": value}}
    load_bounded(target, yaml.safe_dump(document, allow_unicode=True).encode("utf-8"))


@PROPERTIES
@given(st.dictionaries(st.text(min_size=1, max_size=12), _values, max_size=6))
def test_unicode_top_level_keys(target: Path, sections: dict[str, object]) -> None:
    load_bounded(target, yaml.safe_dump(sections, allow_unicode=True).encode("utf-8"))


@settings(FEWER, max_examples=8)
@given(st.integers(1, 1000), st.sampled_from(["[", "{a: ", "- ", "{"]))
def test_nesting(target: Path, depth: int, opener: str) -> None:
    closer = {"[": "]", "{a: ": "}", "{": "}", "- ": ""}[opener]
    if opener == "- ":  # block sequences: one more indent per level
        text = "".join(" " * (2 * level) + "-\n" for level in range(min(depth, 400))) + "x\n"
    else:
        text = "a: " + opener * depth + ("1" if opener == "{a: " else "") + closer * depth + "\n"
    load_bounded(target, text.encode())


@PROPERTIES
@given(st.integers(1, 12), st.integers(1, 12), st.booleans())
def test_anchors_and_aliases(target: Path, levels: int, fan_out: int, as_mapping: bool) -> None:
    lines = ["l0: &l0 [x]"]
    for level in range(1, levels + 1):
        aliases = [f"*l{level - 1}"] * fan_out
        body = ("{" + ", ".join(f"k{i}: {a}" for i, a in enumerate(aliases)) + "}") if as_mapping \
            else "[" + ", ".join(aliases) + "]"
        lines.append(f"l{level}: &l{level} {body}")
    text = "experiment: {name: odd}\ndata: {sources: {listens: {uri: x}}}\nx-anchors:\n" + \
        "".join(f"  {line}\n" for line in lines)
    load_bounded(target, text.encode())


@FEWER
@given(st.integers(1, 2 * 2**20), st.sampled_from(["x", "9", "é", "${env:X}", "'"]))
def test_huge_scalars(target: Path, size: int, piece: str) -> None:
    value = piece * (size // len(piece.encode()))
    text = f"experiment: {{name: odd}}\ndata: {{sources: {{listens: {{uri: {value}}}}}}}\n"
    load_bounded(target, text.encode())


@PROPERTIES
@given(st.lists(st.sampled_from(["!!python/object:os.system", "!foo", "!!binary", "!!set", "!!str", "!",
                                 "&a", "*a", "<<:", "? ", "--- ", "%YAML 1.1\n", "\t", "\x00", "\ufeff"]),
                max_size=6), st.integers(0, len(REAL)))
def test_yaml_syntax_spliced_into_a_real_config(target: Path, pieces: list[str], at: int) -> None:
    content = REAL[:at] + " ".join(pieces).encode() + REAL[at:]
    load_bounded(target, content)
