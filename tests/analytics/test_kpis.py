"""DAU/WAU/MAU, lifecycle, retention and funnels computed out of core on a LocalCluster from
Parquet files equal a plain-pandas reference written here from docs/analytics.md's
definitions (not from daskflow's kernels); configs/analytics.yaml's report shows every plot."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from daskflow.analytics import FunnelStep, activity_kpis, funnel
from daskflow.cli import main
from daskflow.io import read_table

ROOT = Path(__file__).parents[2]
T = pd.Timestamp
#: The data's span: Wednesday 2026-01-21 to Tuesday 2026-02-10, so its first and last ISO weeks
#: and both its months are cut by it (incomplete periods).
FIRST, LAST = T("2026-01-21"), T("2026-02-10")
FREQ = {"day": "D", "week": "W-SUN", "month": "M"}


def write_days(path: Path, frame: pd.DataFrame) -> str:
    """``frame`` as a hive-partitioned Parquet table, one file per day (one Dask partition each)."""
    for day, part in frame.groupby(frame["ts"].dt.strftime("%Y-%m-%d")):
        folder = path / f"date={day}"
        folder.mkdir(parents=True)
        part.to_parquet(folder / "part-0.parquet", index=False)
    return str(path)


def hand_made_listens() -> pd.DataFrame:
    """A few users who exercise each definition, and 40 random ones."""
    rows: list[tuple[str, str, int, str | None]] = [
        # first: active every day of the data (a cohort of the first, incomplete week and month)
        *[("first", str(d.date()) + " 08:00", 60_000, "ios") for d in pd.date_range(FIRST, LAST)],
        # gap: starts Thursday 01-22, back only on 01-25 (day 3) and 02-03: "on day 1" is 0,
        # "on or after day 1" is 1; resurrected in its third week
        ("gap", "2026-01-22 10:00", 40_000, "web"), ("gap", "2026-01-25 23:59", 40_000, "web"),
        ("gap", "2026-02-03 00:00", 40_000, "web"),
        # short: only listens under 30 s before 01-30: not active then with the 30 s filter
        ("short", "2026-01-24 12:00", 10_000, "web"), ("short", "2026-01-27 12:00", 29_999, "web"),
        ("short", "2026-01-30 12:00", 30_000, "web"), ("short", "2026-01-31 12:00", 31_000, "web"),
        # twice: two qualifying listens one day, one on others (min_events=2 keeps only 01-28)
        ("twice", "2026-01-28 01:00", 50_000, "android"), ("twice", "2026-01-28 22:00", 50_000, "android"),
        ("twice", "2026-01-29 01:00", 50_000, "android"), ("twice", "2026-02-09 01:00", 50_000, "android"),
        # last: first seen on the data's last day, an incomplete week and month cohort
        ("last", "2026-02-10 23:00", 90_000, None),
        # early: signs up before the data starts and leaves after its first day
        ("early", "2026-01-21 00:00", 45_000, "ios"),
    ]
    rng = np.random.default_rng(14)
    days = pd.date_range(FIRST, LAST)
    for index in range(40):
        start = int(rng.integers(0, len(days)))
        chosen = [start] + [d for d in range(start + 1, len(days)) if rng.random() < 0.3]
        for day in chosen:
            for _ in range(int(rng.integers(1, 3))):
                seconds = int(rng.integers(0, 86_400))
                rows.append((f"r{index:02d}", str(days[day] + pd.Timedelta(seconds=seconds)),
                             int(rng.integers(5_000, 120_000)), str(rng.choice(["ios", "android", "web"]))))
    frame = pd.DataFrame(rows, columns=["user_id", "ts", "ms_played", "platform"])
    frame["ts"] = pd.to_datetime(frame["ts"], format="ISO8601").astype("datetime64[ms]")
    return frame.sort_values(["ts", "user_id"], ignore_index=True)


def hand_made_signups(listens: pd.DataFrame) -> pd.DataFrame:
    """Signup dates: before the data (early), repeated rows (the first counts), a user who never
    listens (counts in its cohort), and two listeners without a signup row."""
    users = sorted(set(listens["user_id"]) - {"r00", "r01"})
    first = listens.groupby("user_id")["ts"].min().dt.floor("D")
    signup = {u: first[u] - pd.Timedelta(days=int(i % 3)) for i, u in enumerate(users)}
    signup["early"] = T("2026-01-10")  # before the data: an incomplete cohort
    signup["twice"] = T("2026-02-01")  # after its first listens: those are not counted
    rows = [(u, d) for u, d in signup.items()] + [("never", T("2026-01-26")), ("gap", T("2026-02-01"))]
    return pd.DataFrame(rows, columns=["user_id", "signup_date"]).astype({"signup_date": "datetime64[ms]"})


# ---------------------------------------------------------------- the pandas reference


def active_days(listens: pd.DataFrame, min_ms: int, min_events: int) -> dict[str, set[pd.Timestamp]]:
    """A user is active on a (UTC) day with at least ``min_events`` listens of ``min_ms`` or more."""
    chosen = listens[listens["ms_played"] >= min_ms]
    counts = chosen.groupby(["user_id", chosen["ts"].dt.floor("D")]).size()
    active: dict[str, set[pd.Timestamp]] = {}
    for (user, day), n in counts.items():
        if n >= min_events:
            active.setdefault(user, set()).add(T(day))
    return active


def reference_active_users(active: dict[str, set[pd.Timestamp]], first: pd.Timestamp,
                           last: pd.Timestamp) -> pd.DataFrame:
    rows = []
    for day in pd.date_range(first, last):
        def within(width: int, day: pd.Timestamp = day) -> int:
            start = day - pd.Timedelta(days=width - 1)
            return sum(any(start <= d <= day for d in days) for days in active.values())
        dau, wau, mau = within(1), within(7), within(30)
        rows.append({"date": day, "dau": dau, "wau": wau, "mau": mau,
                     "stickiness": dau / mau if mau else np.nan,
                     "wau_complete": day - pd.Timedelta(days=6) >= first,
                     "mau_complete": day - pd.Timedelta(days=29) >= first})
    return pd.DataFrame(rows)


def periods_of(days: set[pd.Timestamp], period: str) -> set[pd.Period]:
    return {d.to_period(FREQ[period]) for d in days}


def reference_lifecycle(active: dict[str, set[pd.Timestamp]], first: pd.Timestamp, last: pd.Timestamp,
                        period: str) -> pd.DataFrame:
    by_user = {u: periods_of(days, period) for u, days in active.items()}
    rows = []
    p, end = first.to_period(FREQ[period]), last.to_period(FREQ[period])
    while p <= end:
        now = {u for u, ps in by_user.items() if p in ps}
        before = {u for u, ps in by_user.items() if p - 1 in ps}
        new = {u for u in now if min(by_user[u]) == p}
        returning = now & before
        resurrected = now - before - new
        rows.append({"period": p.start_time, "new": len(new), "returning": len(returning),
                     "resurrected": len(resurrected), "dormant": len(before - now),
                     "active": len(now),
                     "complete": (p - 1).start_time >= first and p.end_time.floor("D") <= last})
        p += 1
    return pd.DataFrame(rows)


def reference_retention(active: dict[str, set[pd.Timestamp]], cohorts: dict[str, pd.Period],
                        first: pd.Timestamp, last: pd.Timestamp, period: str
                        ) -> tuple[pd.DataFrame, pd.DataFrame]:
    by_user = {u: periods_of(active.get(u, set()), period) for u in cohorts}
    end = last.to_period(FREQ[period])
    rows = []
    for cohort in sorted(set(cohorts.values())):
        members = [u for u, c in cohorts.items() if c == cohort]
        for offset in range(0, max((end - cohort).n, 0) + 1):
            cell = cohort + offset
            on = sum(cell in by_user[u] for u in members)
            on_or_after = sum(any(p >= cell for p in by_user[u]) for u in members)
            rows.append({"cohort": cohort.start_time, "offset": offset, "cohort_users": len(members),
                         "retained": on, "retained_on_or_after": on_or_after,
                         "complete": cohort.start_time >= first and cell.end_time.floor("D") <= last,
                         "rate": on / len(members), "rate_on_or_after": on_or_after / len(members)})
    matrix = pd.DataFrame(rows)
    complete = matrix[matrix["complete"]]
    average = []
    for offset, cells in complete.groupby("offset"):
        size = cells["cohort_users"].sum()
        average.append({"offset": offset, "cohorts": len(cells), "cohort_users": size,
                        "retained": cells["retained"].sum(),
                        "retained_on_or_after": cells["retained_on_or_after"].sum(),
                        "rate": cells["retained"].sum() / size,
                        "rate_on_or_after": cells["retained_on_or_after"].sum() / size})
    return matrix, pd.DataFrame(average, columns=["offset", "cohorts", "cohort_users", "retained",
                                                  "retained_on_or_after", "rate", "rate_on_or_after"])


def same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    got = got[list(expected.columns)].reset_index(drop=True)
    for column in expected.columns:
        if pd.api.types.is_datetime64_any_dtype(expected[column]):
            got[column] = got[column].astype("datetime64[ns]")
            expected[column] = expected[column].astype("datetime64[ns]")
    pd.testing.assert_frame_equal(got, expected.reset_index(drop=True), check_dtype=False)


# ---------------------------------------------------------------- KPIs


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("kpis")
    listens = hand_made_listens()
    signups = hand_made_signups(listens)
    (root / "users").mkdir()
    signups.to_parquet(root / "users" / "part-0.parquet", index=False)
    return {"listens": listens, "signups": signups, "listens_uri": write_days(root / "listens", listens),
            "users_uri": str(root / "users")}


CASES = [  # (lifecycle period, retention period, cohort, min_ms, min_events)
    ("day", "day", "first_activity", 30_000, 1),
    ("week", "week", "first_activity", 30_000, 1),
    ("month", "month", "first_activity", 0, 2),
    ("week", "day", "signup", 30_000, 1),
    ("day", "week", "signup", 0, 2),
]


@pytest.mark.slow
@pytest.mark.parametrize(("lifecycle_period", "retention_period", "cohort", "min_ms", "min_events"), CASES)
def test_kpis_on_the_cluster_equal_the_pandas_reference(lake: dict[str, Any], client: Any,
                                                        lifecycle_period: str, retention_period: str,
                                                        cohort: str, min_ms: int, min_events: int) -> None:
    events = read_table(lake["listens_uri"])
    assert events.npartitions == 21  # one per day file: users are spread over partitions
    signups = read_table(lake["users_uri"]) if cohort == "signup" else None
    tables = activity_kpis(events, user="user_id", time="ts", where=[("ms_played", ">=", min_ms)],
                           min_events=min_events, lifecycle_period=lifecycle_period,
                           retention_period=retention_period, signups=signups, client=client)
    listens = lake["listens"]
    active = active_days(listens, min_ms, min_events)
    assert (tables.first_day, tables.last_day) == (FIRST, LAST)  # the log's span, not the active days'
    same(tables.active_users, reference_active_users(active, FIRST, LAST))
    same(tables.lifecycle, reference_lifecycle(active, FIRST, LAST, lifecycle_period))
    if cohort == "signup":
        first_signup = lake["signups"].groupby("user_id")["signup_date"].min()
        cohorts = {u: T(d).to_period(FREQ[retention_period]) for u, d in first_signup.items()}
        assert tables.info["users_without_cohort"] == len(set(active) - set(cohorts))
    else:
        cohorts = {u: min(periods_of(days, retention_period)) for u, days in active.items()}
    matrix, average = reference_retention(active, cohorts, FIRST, LAST, retention_period)
    same(tables.retention, matrix)
    same(tables.retention_average, average)


def test_the_hand_made_cases_say_what_the_definitions_say(lake: dict[str, Any], client: Any) -> None:
    """A few cells read off the hand-made users, so a reference that drifted would be caught too."""
    listens = lake["listens"]
    only = listens[listens["user_id"].isin(["gap", "short", "last", "first"])]
    tables = activity_kpis(read_table(lake["listens_uri"], filters=[("user_id", "in", ["gap", "short", "last",
                                                                                      "first"])]),
                           user="user_id", time="ts", where=[("ms_played", ">=", 30_000)],
                           lifecycle_period="week", retention_period="day", client=client)
    assert len(only) and tables.first_day == FIRST
    matrix = tables.retention.set_index(["cohort", "offset"])
    gap = matrix.loc[(T("2026-01-22"),)]  # gap alone in its cohort: day 3 and day 12 only
    assert gap["cohort_users"].eq(1).all()
    assert gap.loc[1, "retained"] == 0 and gap.loc[1, "retained_on_or_after"] == 1
    assert gap.loc[3, "retained"] == 1 and gap.loc[12, "retained"] == 1
    assert gap.loc[13, "retained_on_or_after"] == 0
    assert T("2026-01-24") not in matrix.index.get_level_values(0)  # short: first active on 01-30
    assert matrix.loc[(T("2026-02-10"), 0), "retained"] == 1  # last
    weeks = tables.lifecycle.set_index("period")
    # Week of 01-19 is cut by the data's start, 02-09 by its end; 01-26 has no whole week before it.
    assert weeks["complete"].tolist() == [False, False, True, False]
    assert weeks.loc[T("2026-02-02"), "resurrected"] == 1  # gap, after a week away
    assert weeks.loc[T("2026-02-02"), "dormant"] == 1  # short, last active the week before
    average = tables.retention_average.set_index("offset")
    # Day 20 is only observed for the first day's cohort: the average is that cohort's cell.
    assert average.loc[20, "cohorts"] == 1 and average.loc[20, "rate"] == 1.0


# ---------------------------------------------------------------- funnels

WINDOW = pd.Timedelta(days=7)


def funnel_logs() -> dict[str, pd.DataFrame]:
    """Listens (step 0: >= 30 s), house ads (step 1) and conversions (step 2)."""
    listens = [
        ("conv", "2026-01-05 10:00", 60_000, "ios"),  # converts: 10:00 -> ad 11:00 -> premium 13:00
        ("conv", "2026-01-05 09:00", 1_000, "web"),   # a skip before: not the entering event
        ("skip", "2026-01-05 10:00", 60_000, "web"),  # premium without the ad: stops at step 0
        ("late", "2026-01-06 00:00", 60_000, "web"),  # ad, then premium 7 days + 1 s after entering
        ("edge", "2026-01-06 00:00", 60_000, "android"),  # premium exactly 7 days after: inside
        ("order", "2026-01-07 12:00", 60_000, "ios"),  # ad before the listen, then none: stops at 0
        ("tie", "2026-01-08 08:00", 60_000, "web"),   # two entering events at once: the smallest value
        ("tie", "2026-01-08 08:00", 60_000, "android"),
        ("none", "2026-01-08 09:00", 60_000, None),   # no platform: the "(none)" group
        ("short", "2026-01-05 10:00", 5_000, "ios"),  # never a 30 s listen: never enters
    ]
    ads = [("conv", "2026-01-05 11:00"), ("late", "2026-01-06 01:00"), ("edge", "2026-01-10 00:00"),
           ("order", "2026-01-07 11:00"), ("tie", "2026-01-08 08:00"),  # the same instant: not after
           ("tie", "2026-01-09 08:00"), ("none", "2026-01-08 10:00"), ("short", "2026-01-05 11:00")]
    conversions = [("conv", "2026-01-05 13:00"), ("skip", "2026-01-05 12:00"),
                   ("late", "2026-01-13 00:00:01"), ("edge", "2026-01-13 00:00:00"),
                   ("edge", "2026-01-07 00:00:00"),  # before its ad: does not count
                   ("tie", "2026-01-09 07:00"), ("tie", "2026-01-10 07:00"), ("short", "2026-01-05 12:00")]
    rng = np.random.default_rng(3)
    for index in range(60):  # random users for the medians and the breakdown
        user, start = f"r{index:02d}", T("2026-01-05") + pd.Timedelta(minutes=int(rng.integers(0, 20_000)))
        listens.append((user, str(start), int(rng.choice([5_000, 60_000])), str(rng.choice(["ios", "web"]))))
        if rng.random() < 0.7:
            ad = start + pd.Timedelta(minutes=int(rng.integers(-600, 6_000)))
            ads.append((user, str(ad)))
            if rng.random() < 0.6:
                conversions.append((user, str(ad + pd.Timedelta(minutes=int(rng.integers(-60, 9_000))))))
    frames = {"listens": pd.DataFrame(listens, columns=["user_id", "ts", "ms_played", "platform"]),
              "ads": pd.DataFrame(ads, columns=["user_id", "ts"]),
              "conversions": pd.DataFrame(conversions, columns=["user_id", "ts"])}
    for frame in frames.values():
        frame["ts"] = pd.to_datetime(frame["ts"], format="ISO8601").astype("datetime64[ms]")
    return frames


def reference_funnel(logs: dict[str, pd.DataFrame], breakdown: str | None) -> pd.DataFrame:
    """Enter at the first matching listen; each step's first event strictly after the previous
    step's and at most WINDOW after entering; a step is not reached without the one before."""
    listens = logs["listens"][logs["listens"]["ms_played"] >= 30_000]
    steps = [listens, logs["ads"], logs["conversions"]]
    people = []
    for user, own in listens.groupby("user_id"):
        times = [own["ts"].min()]
        for step in steps[1:]:
            previous = times[-1]
            if pd.isna(previous):
                times.append(pd.NaT)
                continue
            mine = step.loc[step["user_id"] == user, "ts"]
            mine = mine[(mine > previous) & (mine - times[0] <= WINDOW)]
            times.append(mine.min() if len(mine) else pd.NaT)
        value = own.loc[own["ts"] == times[0], "platform"].dropna()
        people.append({"times": times, "value": min(value) if len(value) else "(none)"})
    groups = [("(all)", people)]
    if breakdown:
        groups += [(v, [p for p in people if p["value"] == v]) for v in sorted({p["value"] for p in people})]
    rows = []
    for value, members in groups:
        counts = [sum(pd.notna(p["times"][k]) for p in members) for k in range(3)]
        for k, name in enumerate(["listen", "house ad", "premium"]):
            reached = [p["times"] for p in members if pd.notna(p["times"][k])]
            row = {} if breakdown is None else {breakdown: value}
            row.update(step=name, step_index=k, users=counts[k],
                       conversion_from_previous=(counts[k] / (counts[k - 1] if k else len(members))
                                                 if (counts[k - 1] if k else len(members)) else np.nan),
                       conversion_overall=counts[k] / len(members))
            if k and reached:
                row["median_seconds_from_previous"] = float(np.median(
                    [(t[k] - t[k - 1]).total_seconds() for t in reached]))
                row["median_seconds_from_start"] = float(np.median([(t[k] - t[0]).total_seconds()
                                                                    for t in reached]))
            else:
                row["median_seconds_from_previous"] = row["median_seconds_from_start"] = np.nan
            rows.append(row)
    return pd.DataFrame(rows)


@pytest.mark.slow
@pytest.mark.parametrize("breakdown", [None, "platform"])
def test_the_funnel_on_the_cluster_equals_the_pandas_reference(tmp_path: Path, client: Any,
                                                               breakdown: str | None) -> None:
    logs = funnel_logs()
    sources = {name: read_table(write_days(tmp_path / name, frame)) for name, frame in logs.items()}
    assert sources["listens"].npartitions > 5
    steps = [FunnelStep("listen", "listens", [("ms_played", ">=", 30_000)]), FunnelStep("house ad", "ads"),
             FunnelStep("premium", "conversions")]
    table, info = funnel(sources, steps, user="user_id", window=WINDOW, breakdown=breakdown, client=client)
    expected = reference_funnel(logs, breakdown)
    same(table, expected)
    assert info["entered"] == expected.loc[0, "users"]
    assert table.iloc[2]["users"] >= 3  # conv, edge and tie at least
    if breakdown:
        assert set(table[breakdown]) >= {"(all)", "(none)", "android", "ios", "web"}


def test_the_hand_made_funnel_users_stop_where_the_definition_says(tmp_path: Path, client: Any) -> None:
    logs = {name: frame[~frame["user_id"].str.startswith("r")] for name, frame in funnel_logs().items()}
    sources = {name: read_table(write_days(tmp_path / name, frame)) for name, frame in logs.items()}
    steps = [FunnelStep("listen", "listens", [("ms_played", ">=", 30_000)]), FunnelStep("house ad", "ads"),
             FunnelStep("premium", "conversions")]
    table, info = funnel(sources, steps, user="user_id", window=WINDOW, breakdown="platform", client=client)
    overall = table[table["platform"] == "(all)"].set_index("step")
    # Entered: conv, skip, late, edge, order, tie, none; ad: conv, late, edge, tie, none;
    # premium: conv, edge (exactly 7 days), tie.
    assert info["entered"] == 7
    assert overall["users"].tolist() == [7, 5, 3]
    assert overall.loc["premium", "conversion_from_previous"] == pytest.approx(3 / 5)
    assert overall.loc["premium", "conversion_overall"] == pytest.approx(3 / 7)
    # Seconds from the ad to premium: conv 2 h, edge 3 days, tie 23 h -> median 23 h.
    assert overall.loc["premium", "median_seconds_from_previous"] == 23 * 3600
    by_platform = table.set_index(["platform", "step"])["users"]
    assert by_platform[("android", "listen")] == 2  # edge, and tie (android < web)
    assert by_platform[("(none)", "premium")] == 0


# ---------------------------------------------------------------- the example's report


@pytest.mark.slow
def test_the_analytics_example_report_shows_every_plot_in_chromium(tmp_path: Path) -> None:
    """configs/analytics.yaml, as written but on a small generated lake, through the CLI: its
    report embeds the forest plot, cohort heatmap, funnel and DAU/MAU lines, and they render."""
    from tests.reporting.test_report import images_loaded_in_chromium

    config = yaml.safe_load((ROOT / "configs" / "analytics.yaml").read_text())
    lake = tmp_path / "lake"
    config["data"]["sample"]["path"] = str(lake)
    for name, source in config["data"]["sources"].items():
        source["uri"] = str(lake / name)
    config["cluster"] = {"n_workers": 1, "processes": False, "dashboard_address": ":0"}
    config["output"] = {"dir": str(tmp_path / "out")}
    path = tmp_path / "analytics.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", str(path)]) == 0
    run = next((tmp_path / "out" / "analytics").iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["kpis"]["funnels"]["listen_to_premium"]["entered"] > 0
    assert metrics["abtest"]["results"]
    page = (run / "report.html").read_text()
    for plot in ("abtest_forest", "kpis_retention", "kpis_funnel", "kpis_active_users"):
        png = (run / "plots" / f"{plot}.png").read_bytes()
        assert base64.b64encode(png).decode() in page, plot  # embedded, whatever its caption
    for table in ("active_users", "lifecycle", "retention", "retention_average", "funnel_listen_to_premium"):
        assert (run / "artifacts" / "kpis" / f"{table}.parquet").exists(), table
    images, loaded = images_loaded_in_chromium(run / "report.html", tmp_path).split("/")
    assert images == loaded and int(images) == len(list((run / "plots").glob("*.png"))) >= 4
