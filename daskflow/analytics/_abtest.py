"""The A/B test's one pass over the logs: per-variant sufficient statistics on the cluster.

Each metric source is read once. Each row finds its unit's (variant, assignment time): in a
copy of the units every worker holds (up to :data:`BROADCAST_MAX_UNITS` units), or by a Dask
merge (a shuffle, so neither side has to fit in memory). Each row is placed in its unit's
metric window (``[assigned_at, assigned_at + within_days)``) or CUPED pre-period
(``[assigned_at - pre_days, assigned_at)``), and summed per unit. The per-unit sums are
joined back to every assigned unit (a unit without events counts as 0) and reduced per
variant to the sums of :class:`SufficientStats`. Only those few numbers per variant reach
the client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask import delayed

from daskflow._dask import compute
from daskflow._errors import DataError, SchemaError
from daskflow.analytics._abtest_kernels import KINDS, SufficientStats

__all__ = ["MetricSpec", "AssignmentSummary", "assignment_units", "abtest_sufficient_stats",
           "BROADCAST_MAX_UNITS"]

#: Up to this many assigned units, every worker holds the unit -> (variant, assignment time)
#: table (about 100 bytes a unit) and looks each log row's unit up in a hash index built once
#: per worker, instead of joining the logs to it: on a 200k-row day of the medium lake's
#: listens that is 0.12 s against 0.33 s for the pandas merge and sums (each merge rebuilds
#: the hash table of the 183k units), and the logs are never shuffled.
BROADCAST_MAX_UNITS = 5_000_000


@dataclass(frozen=True)
class MetricSpec:
    """One metric of an A/B test, in plain values (the runner builds it from the config).

    Parameters
    ----------
    source : name of the table (a key of the ``sources`` mapping)
    kind : ``proportion`` (the unit has a row in its window), ``mean`` (the unit's sum of
        ``value``; ``value=None`` counts rows) or ``ratio`` (sum of ``value`` over sum of
        ``denominator``, a column or ``None`` for the row count)
    within_days : length of the metric window after assignment
    pre_days : length of the CUPED pre-period before assignment (``None``: no CUPED)
    time : the source's timestamp column
    where : the key the metric has in the config, for messages
    """

    source: str
    kind: str
    within_days: int
    value: str | None = None
    denominator: str | None = None
    pre_days: int | None = None
    time: str = "ts"
    where: str = "metric"


@dataclass(frozen=True)
class AssignmentSummary:
    """Units per variant and the assignment times, checked."""

    counts: dict[str, int]
    first_assigned: pd.Timestamp
    last_assigned: pd.Timestamp


def _require(frame: dd.DataFrame, columns: list[str], what: str, where: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SchemaError(f"{what} has no column {', '.join(map(repr, missing))} ({where}): found "
                          f"{', '.join(map(str, frame.columns))}. Set {where} to one of those columns")


def assignment_units(assignments: dd.DataFrame, *, unit: str, variant: str, time: str,
                     control: str, experiment: str | None = None, experiment_column: str = "experiment",
                     expected_variants: list[str] | None = None, where: str = "abtest.assignments",
                     client: Any = None) -> tuple[dd.DataFrame, AssignmentSummary]:
    """One row per assigned unit (unit, variant, first assignment time), after checking them.

    Raises
    ------
    SchemaError
        A named column is missing.
    DataError
        A unit in two variants, no control, a variant without units, no assignments.
    """
    _require(assignments, [unit, variant, time], "the assignments table", where)
    if experiment is not None:
        _require(assignments, [experiment_column], "the assignments table", f"{where}.experiment_column")
        assignments = assignments[assignments[experiment_column] == experiment]
    pairs = (assignments[[unit, variant, time]].groupby([unit, variant], observed=True)[time].min()
             .reset_index())
    per_unit = pairs.groupby(unit, observed=True)[variant].count()
    conflicts = per_unit[per_unit > 1]
    tasks = (pairs.groupby(variant, observed=True)[unit].count(), conflicts.shape[0],
             conflicts.head(3, npartitions=-1, compute=False), pairs[time].min(), pairs[time].max())
    if experiment is None:
        tasks += (assignments[experiment_column].drop_duplicates(),) \
            if experiment_column in assignments.columns else ()
    computed = compute(list(tasks), client)
    counts, n_conflicts, examples, first, last = computed[:5]
    if experiment is None and len(computed) > 5 and len(computed[5]) > 1:
        names = sorted(map(str, computed[5]))
        raise DataError(f"the assignments table holds {len(names)} experiments ({', '.join(names)}) "
                        f"({where}): expected one. Set {where}.experiment to one of them")
    counts = {str(k): int(v) for k, v in counts.items()}
    if not counts:
        raise DataError(f"no assignments ({where}{'.experiment=' + repr(experiment) if experiment else ''}): "
                        "expected rows of unit, variant and assignment time. Check the source and "
                        "the experiment name")
    if n_conflicts:
        shown = ", ".join(map(str, list(examples.index)[:3]))
        raise DataError(f"{n_conflicts} unit(s) assigned to more than one variant in column {variant!r} "
                        f"({where}), e.g. {unit} {shown}: expected each unit in exactly one variant. "
                        "Fix the assignment log or drop those units")
    found = ", ".join(f"{name} ({n} units)" for name, n in sorted(counts.items()))
    if control not in counts:
        raise DataError(f"control variant {control!r} not found in column {variant!r} ({where}.control): "
                        f"found {found}. Set {where}.control to the control's value")
    for name in expected_variants or ():
        if name not in counts:
            raise DataError(f"variant {name!r} has no units (abtest.split): found {found}. Remove it "
                            "from abtest.split or fix the assignment log")
    if len(counts) < 2:
        raise DataError(f"only the control variant {control!r} has units ({where}): expected at least "
                        "one treatment variant")
    return pairs, AssignmentSummary(counts, pd.Timestamp(first), pd.Timestamp(last))


def _unit_sums(events: dd.DataFrame, units: dd.DataFrame, metrics: Mapping[str, MetricSpec], *,
               unit: str, variant: str, assigned: str, prefix: str) -> tuple[dd.DataFrame, dict[str, Any]]:
    """Per-unit window sums of every metric on one source, and the rows-in-window counts."""
    joined = events.merge(units, on=unit, how="inner")
    columns: dict[str, Any] = {}
    counts: dict[str, Any] = {}
    for name, spec in metrics.items():
        delta = joined[spec.time] - joined[assigned]
        post = (delta >= pd.Timedelta(0)) & (delta < pd.Timedelta(days=spec.within_days))
        value = joined[spec.value].astype("float64") if spec.value else 1.0
        columns[f"{prefix}{name}.x"] = post.astype("float64") * value
        columns[f"{prefix}{name}.rows"] = post.astype("float64")
        if spec.kind == "ratio":
            denominator = joined[spec.denominator].astype("float64") if spec.denominator else 1.0
            columns[f"{prefix}{name}.y"] = post.astype("float64") * denominator
        if spec.pre_days:
            pre = (delta < pd.Timedelta(0)) & (delta >= -pd.Timedelta(days=spec.pre_days))
            columns[f"{prefix}{name}.c"] = pre.astype("float64") * value
        counts[name] = post.sum()
    frame = joined[[unit]].assign(**columns)
    return frame.groupby(unit, observed=True).sum().reset_index(), counts


@dataclass(frozen=True)
class _UnitLookup:
    """The assigned units as every worker holds them: position in ``index`` is the unit's code."""

    index: pd.Index
    assigned_ns: np.ndarray  # int64 nanoseconds (UTC) per code
    variant_codes: np.ndarray
    variants: list[str]


def _nanoseconds(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps as int64 UTC nanoseconds, and where they are missing."""
    series = pd.Series(values)
    if getattr(series.dt, "tz", None) is not None:
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    stamps = series.to_numpy(dtype="datetime64[ns]")
    return stamps.view(np.int64), np.isnat(stamps)


def _unit_lookup(units: pd.DataFrame, unit: str, variant: str, assigned: str) -> _UnitLookup:
    codes, variants = pd.factorize(units[variant].astype(str), sort=True)
    index = pd.Index(units[unit].to_numpy(dtype=object))
    index.get_indexer(index[:1])  # builds the hash table once per worker, not once per partition
    return _UnitLookup(index, _nanoseconds(units[assigned])[0], codes.astype(np.int64), list(variants))


def _window_sums_part(part: pd.DataFrame, lookup: _UnitLookup, specs: Mapping[str, MetricSpec], *,
                      unit: str) -> pd.DataFrame:
    """One partition's per-unit window sums (``code``, ``<metric>.x/.rows/.y/.c``)."""
    codes = lookup.index.get_indexer(part[unit].to_numpy(dtype=object))
    keep = codes >= 0
    codes = codes[keep]
    assigned = lookup.assigned_ns[codes]
    columns: dict[str, np.ndarray] = {}
    for name, spec in specs.items():
        times, missing = _nanoseconds(part[spec.time])
        times, valid = times[keep], ~missing[keep]
        delta = times - assigned
        post = valid & (delta >= 0) & (delta < spec.within_days * _DAY_NS)
        value = part[spec.value].to_numpy(dtype="float64", na_value=np.nan)[keep] if spec.value else 1.0
        columns[f"{name}.x"] = np.where(post, value, 0.0)
        columns[f"{name}.rows"] = post.astype("float64")
        if spec.kind == "ratio":
            denominator = (part[spec.denominator].to_numpy(dtype="float64", na_value=np.nan)[keep]
                           if spec.denominator else 1.0)
            columns[f"{name}.y"] = np.where(post, denominator, 0.0)
        if spec.pre_days:
            pre = valid & (delta < 0) & (delta >= -spec.pre_days * _DAY_NS)
            columns[f"{name}.c"] = np.where(pre, value, 0.0)
    frame = pd.DataFrame({"code": codes, **columns})
    return frame.groupby("code", sort=False).sum().reset_index()  # NaN values count 0, as in a join


def _metric_products(frame: Any, specs: Mapping[str, MetricSpec], prefix: str = "") -> dict[str, Any]:
    """Each metric's per-unit value x (and y, covariate c), their squares and cross products.

    ``frame`` holds a unit's sums as columns ``<prefix><name>.x`` (``.rows``, ``.y``, ``.c``);
    a proportion's x (and c) is whether the unit had any matching row. Works on a pandas
    partition and on a Dask frame alike.
    """
    products: dict[str, Any] = {}
    for name, spec in specs.items():
        key = f"{prefix}{name}"
        binary = spec.kind == "proportion"
        x = (frame[f"{key}.rows"] > 0).astype("float64") if binary else frame[f"{key}.x"]
        products[f"{name}|x"], products[f"{name}|x2"] = x, x * x
        if spec.kind == "ratio":
            y = frame[f"{key}.y"]
            products[f"{name}|y"], products[f"{name}|y2"], products[f"{name}|xy"] = y, y * y, x * y
        if spec.pre_days:
            c = (frame[f"{key}.c"] > 0).astype("float64") if binary else frame[f"{key}.c"]
            products[f"{name}|c"], products[f"{name}|c2"], products[f"{name}|xc"] = c, c * c, x * c
    return products


def _variant_sums_part(part: pd.DataFrame, lookup: _UnitLookup, specs: Mapping[str, MetricSpec]
                       ) -> pd.DataFrame:
    """Per variant code, the sums, squares and cross products of some units' metric values."""
    products = _metric_products(part, specs)
    variant = lookup.variant_codes[part["code"].to_numpy(dtype=np.int64)]
    return pd.DataFrame({"variant": variant, **products}).groupby("variant").sum().reset_index()


_DAY_NS = 86_400 * 10**9


def _broadcast_stats(units: dd.DataFrame, sources: Mapping[str, dd.DataFrame],
                     by_source: Mapping[str, Mapping[str, MetricSpec]], *, unit: str, variant: str,
                     assigned: str, client: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The per-variant sums with the units held by every worker (no shuffle of the logs)."""
    lookup = delayed(_unit_lookup, pure=True)(units[[unit, variant, assigned]], unit, variant, assigned)
    # Units per variant from the units themselves: a Delayed in the same compute as these
    # expressions would make Dask materialise them unoptimised.
    tasks: dict[str, Any] = {"n": units.groupby(variant, observed=True)[unit].count()}
    for index, (source, specs) in enumerate(by_source.items()):
        events = _metric_columns(sources[source], source, specs, unit)
        meta = pd.DataFrame({"code": pd.Series([], dtype="int64"),
                             **{f"{name}.{part}": pd.Series([], dtype="float64")
                                for name, spec in specs.items()
                                for part in ("x", "rows", *(("y",) if spec.kind == "ratio" else ()),
                                             *(("c",) if spec.pre_days else ()))}})
        partial = events.map_partitions(_window_sums_part, lookup, specs, unit=unit, meta=meta)
        per_unit = partial.groupby("code").sum().reset_index()
        variant_meta = _variant_sums_part(meta, _UnitLookup(pd.Index([]), np.zeros(0, np.int64),
                                                           np.zeros(0, np.int64), []), specs)
        tasks[f"s{index}"] = per_unit.map_partitions(_variant_sums_part, lookup, specs,
                                                     meta=variant_meta).groupby("variant").sum()
        for name, spec in specs.items():
            tasks[f"{name}.rows"] = partial[f"{name}.rows"].sum()
            tasks[f"{name}.first"] = events[spec.time].min()
            tasks[f"{name}.last"] = events[spec.time].max()
    results = dict(zip(tasks, compute(list(tasks.values()), client), strict=True))
    counts = {str(name): int(n) for name, n in results.pop("n").items()}
    variants = sorted(counts)  # the order of _unit_lookup's codes
    frames = [results.pop(f"s{index}").reindex(range(len(variants)), fill_value=0.0)
              for index in range(len(by_source))]
    sums = pd.concat(frames, axis=1).set_axis(variants, axis=0)
    sums.insert(0, "n", [float(counts[v]) for v in variants])
    return {"sums": sums, **results}, counts


def _metric_columns(events: dd.DataFrame, source: str, specs: Mapping[str, MetricSpec],
                    unit: str) -> dd.DataFrame:
    """The columns the metrics of one source read, after checking they are there."""
    first = next(iter(specs.values()))
    _require(events, [unit], f"metric source {source!r}", f"{first.where}.source: the unit column "
             f"abtest.assignments.unit={unit!r}")
    needed = [unit]
    for spec in specs.values():
        _require(events, [spec.time], f"metric source {source!r}", f"{spec.where}.time")
        for column, key in ((spec.value, "value"), (spec.denominator, "denominator")):
            if column is not None:
                _require(events, [column], f"metric source {source!r}", f"{spec.where}.{key}")
        needed += [c for c in (spec.time, spec.value, spec.denominator) if c]
    return events[list(dict.fromkeys(needed))]


def abtest_sufficient_stats(units: dd.DataFrame, sources: Mapping[str, dd.DataFrame],
                            metrics: Mapping[str, MetricSpec], *, unit: str, variant: str,
                            assigned: str, n_units: int | None = None,
                            max_broadcast_units: int = BROADCAST_MAX_UNITS, client: Any = None
                            ) -> tuple[dict[str, dict[str, SufficientStats]], dict[str, Any]]:
    """Per metric and variant, the :class:`SufficientStats` of the units' metric values.

    Parameters
    ----------
    units : one row per unit: ``unit``, ``variant``, ``assigned`` (from :func:`assignment_units`)
    sources : the metric sources by name, lazily read
    metrics : the metrics by name
    n_units : the number of units (``sum(AssignmentSummary.counts.values())``); counted when not given
    max_broadcast_units : up to this many units, every worker holds them all and the logs are
        not shuffled; above it, the logs are joined to the units by a shuffle (out of core on
        both sides)

    Returns
    -------
    stats : ``{metric: {variant: SufficientStats}}``
    info : per metric the rows found in the windows and the source's time range

    Raises
    ------
    SchemaError
        A metric source lacks the unit, time, value or denominator column.
    DataError
        No row of a metric's source falls in any unit's window.
    """
    by_source: dict[str, dict[str, MetricSpec]] = {}
    for name, spec in metrics.items():
        if spec.kind not in KINDS:
            raise DataError(f"unknown metric kind {spec.kind!r} ({spec.where}.kind): expected one of "
                            f"{', '.join(KINDS)}")
        by_source.setdefault(spec.source, {})[name] = spec
    if n_units is None:
        n_units = int(compute([units.shape[0]], client)[0])
    if n_units <= max_broadcast_units:
        results, _ = _broadcast_stats(units, sources, by_source, unit=unit, variant=variant,
                                      assigned=assigned, client=client)
        return _assemble(metrics, results)
    table = units
    sum_columns: list[str] = []
    pending: dict[str, Any] = {}
    for index, (source, specs) in enumerate(by_source.items()):
        events = _metric_columns(sources[source], source, specs, unit)
        sums, counts = _unit_sums(events, units, specs, unit=unit, variant=variant, assigned=assigned,
                                  prefix=f"s{index}:")
        table = table.merge(sums, on=unit, how="left")
        sum_columns += [c for c in sums.columns if c != unit]
        for name, spec in specs.items():
            pending[f"{name}.rows"] = counts[name]
            pending[f"{name}.first"] = events[spec.time].min()
            pending[f"{name}.last"] = events[spec.time].max()
    # Per unit: the metric values; per variant: their sums, squares and cross products.
    table = table.fillna({column: 0.0 for column in sum_columns})
    products: dict[str, Any] = {}
    for index, specs in enumerate(by_source.values()):
        products.update(_metric_products(table, specs, prefix=f"s{index}:"))
    reduced = table[[variant]].assign(n=1.0, **products).groupby(variant, observed=True).sum()
    keys = ["sums", *pending]
    values = [reduced, *pending.values()]
    computed = compute(values, client)
    return _assemble(metrics, dict(zip(keys, computed)))


def _assemble(metrics: Mapping[str, MetricSpec], results: dict[str, Any]
              ) -> tuple[dict[str, dict[str, SufficientStats]], dict[str, Any]]:
    """:class:`SufficientStats` per metric and variant from the per-variant sums (``results["sums"]``,
    one row per variant) and each metric's rows in window and source time range."""
    sums_frame: pd.DataFrame = results.pop("sums")
    info: dict[str, Any] = {}
    out: dict[str, dict[str, SufficientStats]] = {}
    for name, spec in metrics.items():
        rows = int(results[f"{name}.rows"])
        first, last = results[f"{name}.first"], results[f"{name}.last"]
        info[name] = {"rows_in_window": rows, "source_first": str(first), "source_last": str(last)}
        if rows == 0:
            raise DataError(f"no row of source {spec.source!r} falls within {spec.within_days} day(s) after "
                            f"any unit's assignment ({spec.where}): the source's {spec.time} runs from "
                            f"{first} to {last}. Check {spec.where}.source and within_days against the "
                            "assignment times")
        out[name] = {}
        for variant_name, row in sums_frame.iterrows():
            get = lambda part, row=row, name=name: float(row.get(f"{name}|{part}", 0.0))  # noqa: E731
            out[name][str(variant_name)] = SufficientStats(
                n=float(row["n"]), sum_x=get("x"), sum_x2=get("x2"), sum_y=get("y"), sum_y2=get("y2"),
                sum_xy=get("xy"), sum_c=get("c"), sum_c2=get("c2"), sum_xc=get("xc"))
    return out, info
