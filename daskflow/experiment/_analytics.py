"""The product-analytics stages: ``kpis`` and ``abtest``.

The runner calls these with the validated config and its run state; they turn the config
into plain arguments for :mod:`daskflow.analytics`, write the results into the run
directory (``artifacts/abtest.nc``, ``artifacts/kpis/*.parquet``, ``metrics.json["abtest"]``
and ``["kpis"]``, ``plots/abtest_forest.png`` and ``plots/kpis_*.png``) and raise a user
error for anything the data contradicts.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from daskflow._errors import ConfigError, DataError
from daskflow.analytics import (
    FunnelStep,
    MetricSpec,
    abtest_sufficient_stats,
    activity_kpis,
    analyze_abtest,
    assignment_units,
    funnel,
    results_table,
)
from daskflow.config import Config
from daskflow.experiment._rundir import plots_dir
from daskflow.experiment._sources import interaction_columns, read_source
from daskflow.experiment._state import RunState

__all__ = ["stage_abtest", "stage_kpis"]

log = logging.getLogger("daskflow")


def _check_sources(config: Config) -> None:
    spec = config.abtest
    assert spec is not None
    known = ", ".join(sorted(config.data.sources))
    wanted = [("abtest.assignments.source", spec.assignments.source)]
    wanted += [(f"abtest.metrics.{name}.source", metric.source) for name, metric in spec.metrics.items()]
    for key, source in wanted:
        if source not in config.data.sources:
            raise ConfigError(f"{key} is {source!r}, not a data.sources entry (has {known}): add it to "
                              "data.sources or name one of those")


def stage_abtest(config: Config, state: RunState) -> None:
    """Analyse the configured A/B test and record its results in the run."""
    spec = config.abtest
    if spec is None:  # stages_to_run refuses this; keep a clear message for direct callers
        raise ConfigError("the abtest stage needs an abtest: section")
    _check_sources(config)
    a = spec.assignments
    assignments = read_source(config, a.source, None)
    units, summary = assignment_units(
        assignments, unit=a.unit, variant=a.variant, time=a.time, control=a.control,
        experiment=a.experiment, experiment_column=a.experiment_column,
        expected_variants=list(spec.split) if spec.split else None, client=state.client)
    if spec.split is not None:
        extra = sorted(set(summary.counts) - set(spec.split))
        if extra:
            raise DataError(f"variant(s) {', '.join(map(repr, extra))} of the assignments have no share in "
                            f"abtest.split (has {', '.join(spec.split)}): add them to abtest.split")
    metrics = {name: MetricSpec(source=m.source, kind=m.kind, within_days=m.within_days, value=m.value,
                                denominator=m.denominator, pre_days=m.cuped.pre_days if m.cuped else None,
                                time=m.time, where=f"abtest.metrics.{name}")
               for name, m in spec.metrics.items()}
    sources = {name: read_source(config, name, None) for name in {m.source for m in metrics.values()}}
    stats, info = abtest_sufficient_stats(units, sources, metrics, unit=a.unit, variant=a.variant,
                                          assigned=a.time, n_units=sum(summary.counts.values()),
                                          client=state.client)
    results, srm = analyze_abtest(
        stats, {name: m.kind for name, m in metrics.items()}, control=a.control, counts=summary.counts,
        expected_shares=spec.split, cuped={name: m.pre_days is not None for name, m in metrics.items()},
        alpha=spec.alpha, correction=spec.correction, srm_threshold=spec.srm_threshold, power=spec.power,
        planned_units=spec.planned_units)
    srm_report = srm.to_dict()
    if not srm.passed:
        counts = ", ".join(f"{v}={n}" for v, n in srm.counts.items())
        message = (f"sample-ratio mismatch: units per variant {counts} differ from the design's shares "
                   f"(chi-square p={srm.p_value:.3g} < abtest.srm_threshold={spec.srm_threshold:g}); the "
                   "assignment or its logging is broken, so the results below cannot be trusted")
        if spec.fail_on_srm:
            raise DataError(f"{message} (abtest.fail_on_srm is true): find the cause of the mismatch, or "
                            "set abtest.fail_on_srm: false to publish the flagged results")
        log.warning("%s", message)
    results.to_netcdf(str(state.work_dir / "artifacts" / "abtest.nc"), engine="scipy")
    table = results_table(results)
    state.metrics["abtest"] = {
        "srm": srm_report, "flagged": not srm.passed, "correction": spec.correction, "alpha": spec.alpha,
        "assigned_from": str(summary.first_assigned), "assigned_to": str(summary.last_assigned),
        "windows": info, "results": table,
    }
    for row in table:
        log.info("abtest %s %s: %+.4g [%.4g, %.4g], p=%.3g (adjusted %.3g)", row["metric"], row["variant"],
                 row["difference"], row["ci_low"], row["ci_high"], row["p_value"], row["p_value_adjusted"])
    from daskflow.reporting import plot_forest

    plot_forest(table, plots_dir(state.work_dir) / "abtest_forest.png",
                title=f"{config.experiment.name}: relative difference vs {a.control}"
                      + ("" if srm.passed else " — SRM CHECK FAILED"))


def stage_kpis(config: Config, state: RunState) -> None:
    """The data KPIs of the interactions source, and with a ``kpis:`` section the product KPIs."""
    from daskflow.analytics import log_kpis

    spec = config.features.interactions
    events = read_source(config, spec.source, interaction_columns(config))
    kpis, dau = log_kpis(events, user_col=spec.user_col, item_col=spec.item_col, time_col=spec.time_col,
                         allow_empty_ids=spec.allow_empty_ids, client=state.client)
    dau.to_parquet(state.work_dir / "artifacts" / "daily_active_users.parquet", index=False)
    state.metrics["data"] = kpis
    if config.kpis is not None:
        _product_kpis(config, state)  # DAU/WAU/MAU with stickiness: kpis_active_users.png
    elif len(dau):
        from daskflow.reporting import plot_active_users

        plot_active_users({"date": dau["date"].to_numpy(), "dau": dau["active_users"].to_numpy()},
                          plots_dir(state.work_dir) / "kpis_active_users.png", title="Daily active users")


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows for metrics.json: dates as ISO strings, NaN as null, plain Python numbers."""
    rows = []
    for row in frame.to_dict("records"):
        clean: dict[str, Any] = {}
        for key, value in row.items():
            if isinstance(value, pd.Timestamp):
                value = value.date().isoformat()
            elif isinstance(value, np.generic):
                value = value.item()
            if isinstance(value, float) and np.isnan(value):
                value = None
            clean[str(key)] = value
        rows.append(clean)
    return rows


def _check_kpi_sources(config: Config, source: str) -> None:
    spec = config.kpis
    assert spec is not None
    known = ", ".join(sorted(config.data.sources))
    wanted = [("kpis.source" if spec.source else "features.interactions.source", source)]
    if spec.retention.cohort == "signup":
        wanted.append(("kpis.retention.users", spec.retention.users))
    for name, entry in spec.funnels.items():
        wanted += [(f"kpis.funnels.{name}.steps[{i}].source", step.source)
                   for i, step in enumerate(entry.steps)]
    for key, name in wanted:
        if name not in config.data.sources:
            raise ConfigError(f"{key} is {name!r}, not a data.sources entry (has {known}): add it to "
                              "data.sources or name one of those")


def _mean(series: pd.Series) -> float | None:
    return float(series.mean()) if len(series) else None


def _product_kpis(config: Config, state: RunState) -> None:
    spec = config.kpis
    assert spec is not None
    interactions = config.features.interactions
    source = spec.source or interactions.source
    user, time = spec.user or interactions.user_col, spec.time or interactions.time_col
    _check_kpi_sources(config, source)
    retention = spec.retention
    signups = read_source(config, retention.users, None) if retention.cohort == "signup" else None
    tables = activity_kpis(
        read_source(config, source, None), user=user, time=time, where=spec.active.where,
        min_events=spec.active.min_events, lifecycle_period=spec.lifecycle_period,
        retention_period=retention.period, retention_offsets=retention.periods, signups=signups,
        signup_column=retention.signup, wau_days=spec.active.wau_days, mau_days=spec.active.mau_days,
        label=f"source {source!r}", key="kpis", client=state.client)
    out = state.work_dir / "artifacts" / "kpis"
    out.mkdir(mode=0o700)
    tables.active_users.to_parquet(out / "active_users.parquet", index=False)
    tables.lifecycle.to_parquet(out / "lifecycle.parquet", index=False)
    tables.retention.to_parquet(out / "retention.parquet", index=False)
    tables.retention_average.to_parquet(out / "retention_average.parquet", index=False)
    active = tables.active_users
    complete = active[active["mau_complete"]]
    summary: dict[str, Any] = {
        "source": source, "first_day": tables.first_day.date().isoformat(),
        "last_day": tables.last_day.date().isoformat(), "days": int(len(active)),
        "active": {"where": [list(f) if isinstance(f, tuple) else f for f in spec.active.where or []],
                   "min_events": spec.active.min_events, "wau_days": spec.active.wau_days,
                   "mau_days": spec.active.mau_days},
        "dau_mean": _mean(active["dau"]), "wau_mean": _mean(active.loc[active["wau_complete"], "wau"]),
        "mau_mean": _mean(complete["mau"]), "stickiness_mean": _mean(complete["stickiness"]),
        "days_with_complete_mau": int(len(complete)),
        "lifecycle": {"period": spec.lifecycle_period, "rows": _records(tables.lifecycle)},
        "retention": {"cohort": retention.cohort, "period": retention.period,
                      "cohorts": int(tables.retention["cohort"].nunique()),
                      "complete_cells": int(tables.retention["complete"].sum()),
                      "average": _records(tables.retention_average), **tables.info},
        "funnels": {},
    }
    funnels: dict[str, pd.DataFrame] = {}
    for name, entry in spec.funnels.items():
        steps = [FunnelStep(step.name, step.source, step.where, step.time) for step in entry.steps]
        sources = {step.source: read_source(config, step.source, None) for step in steps}
        table, info = funnel(sources, steps, user=user, window=pd.Timedelta(days=entry.window_days),
                             breakdown=entry.breakdown, key=f"kpis.funnels.{name}", client=state.client)
        table.to_parquet(out / f"funnel_{name}.parquet", index=False)
        funnels[name] = table
        overall = table[table[entry.breakdown] == "(all)"] if entry.breakdown else table
        summary["funnels"][name] = {**info, "breakdown": entry.breakdown, "steps": _records(overall)}
        log.info("funnel %s: %s", name, " -> ".join(f"{r.step} {r.users}" for r in overall.itertuples()))
    state.metrics["kpis"] = summary
    log.info("kpis: DAU mean %.1f, %d cohorts, %d funnel(s)", summary["dau_mean"] or 0.0,
             summary["retention"]["cohorts"], len(funnels))
    from daskflow.reporting import plot_active_users, plot_funnels, plot_retention

    plots = plots_dir(state.work_dir)
    name = config.experiment.name
    plot_active_users(active, plots / "kpis_active_users.png", title=f"{name}: active users per day")
    cohort = retention.cohort.replace("_", " ")
    plot_retention(tables.retention, plots / "kpis_retention.png",
                   title=f"{name}: retention by {cohort} cohort ({retention.period})")
    if funnels:
        plot_funnels(funnels, plots / "kpis_funnel.png", title=f"{name}: funnels (share of users entering)")
