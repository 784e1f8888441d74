"""The shared health rule: expected intervals from crons (DST included) and classify's verdicts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from dagster._utils.schedules import cron_string_iterator  # Dagster's own tick iterator

from validibot.tasks import health
from validibot.tasks.health import (
    DISABLED,
    FAILING,
    HEALTHY,
    LATE,
    NEVER_RUN,
    HealthConfigError,
    classify,
    expected_interval,
    grace_intervals_from_env,
)
from validibot.tasks.registry import BUILTIN_TASKS, MaintenanceTask

NEW_YORK = "America/New_York"
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _task(cron: str, timezone: str = "UTC", enabled: bool = True) -> MaintenanceTask:
    return MaintenanceTask(
        id="some_task", name="Some task", command="noop_task", cron=cron, timezone=timezone,
        enabled=enabled,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("cron", "timezone", "expected"),
    [
        ("* * * * *", "UTC", timedelta(minutes=1)),
        ("*/5 * * * *", "UTC", timedelta(minutes=5)),
        ("*/5 * * * *", NEW_YORK, timedelta(minutes=5)),
        ("0 * * * *", "UTC", timedelta(hours=1)),
        # Hourly in a DST zone: spring-forward skips a wall-clock hour but not an elapsed one,
        # and at fall-back the scheduler runs 01:00 twice; the gap stays one hour.
        ("0 * * * *", NEW_YORK, timedelta(hours=1)),
        ("0 */6 * * *", "UTC", timedelta(hours=6)),
        ("0 3 * * *", "UTC", timedelta(days=1)),
        # Daily in a DST zone: the fall-back day is 25 hours long.
        ("0 3 * * *", NEW_YORK, timedelta(hours=25)),
        ("30 1 * * *", NEW_YORK, timedelta(hours=25)),
        ("0 4 * * 0", "UTC", timedelta(days=7)),
        ("*/5 9-17 * * 1-5", "UTC", timedelta(days=2, hours=15, minutes=5)),  # the weekend
        ("0 0 1 1 *", "UTC", timedelta(days=365)),
    ],
)
def test_expected_interval_is_the_longest_gap_between_fire_times(cron, timezone, expected):
    assert expected_interval(cron, timezone) == expected


@pytest.mark.parametrize(
    ("cron", "timezone"),
    [
        ("0 * * * *", NEW_YORK),
        ("*/30 * * * *", NEW_YORK),
        ("30 1 * * *", NEW_YORK),
        ("0 2 * * *", NEW_YORK),
        ("0 3 * * *", "Europe/London"),
        ("0 */6 * * *", "Australia/Sydney"),
    ],
)
def test_expected_interval_matches_the_gaps_dagster_really_schedules(cron, timezone):
    """Over a year, the longest gap between the ticks Dagster's scheduler produces."""
    start = datetime(2025, 1, 1, tzinfo=ZoneInfo(timezone)).timestamp()
    ticks = cron_string_iterator(start, cron, timezone)
    fires = []
    for tick in ticks:
        fires.append(tick.astimezone(UTC))
        if tick.timestamp() - start > 366 * 86400:
            break
    dagster_gap = max(b - a for a, b in zip(fires, fires[1:], strict=False))
    assert expected_interval(cron, timezone) == dagster_gap


@pytest.mark.parametrize("task", BUILTIN_TASKS, ids=lambda t: t.id)
def test_every_registry_task_has_an_interval_no_longer_than_a_week(task):
    assert timedelta(0) < health.task_expected_interval(task) <= timedelta(days=7)


HOURLY = _task("0 * * * *")
DAILY_NY = _task("0 3 * * *", NEW_YORK)
EVERY_5 = _task("*/5 * * * *")


@pytest.mark.parametrize(
    ("task", "success_age", "status", "run_age", "state", "overdue"),
    [
        # Hourly: grace 2 h.
        (HOURLY, timedelta(minutes=30), "SUCCESS", timedelta(minutes=30), HEALTHY, False),
        (HOURLY, timedelta(hours=2), "SUCCESS", timedelta(hours=2), HEALTHY, False),  # edge
        (HOURLY, timedelta(hours=2, seconds=1), "SUCCESS", timedelta(hours=2), LATE, True),
        (HOURLY, timedelta(minutes=30), "FAILURE", timedelta(minutes=5), FAILING, False),
        (HOURLY, timedelta(hours=5), "FAILURE", timedelta(minutes=5), FAILING, True),
        # A failure older than the last success is history, not the current state.
        (HOURLY, timedelta(minutes=5), "FAILURE", timedelta(minutes=30), HEALTHY, False),
        # Canceled by an operator: not failing, and not a success either.
        (HOURLY, timedelta(hours=3), "CANCELED", timedelta(minutes=5), LATE, True),
        # Daily in New York: grace 2 x 25 h.
        (DAILY_NY, timedelta(hours=49), "SUCCESS", timedelta(hours=49), HEALTHY, False),
        (DAILY_NY, timedelta(hours=51), "SUCCESS", timedelta(hours=51), LATE, True),
        # Every 5 minutes: grace 10 min; status case does not matter.
        (EVERY_5, timedelta(minutes=9), "success", timedelta(minutes=9), HEALTHY, False),
        (EVERY_5, timedelta(minutes=11), "success", timedelta(minutes=11), LATE, True),
        (EVERY_5, timedelta(minutes=1), "failure", timedelta(seconds=5), FAILING, False),
    ],
)
def test_classify(task, success_age, status, run_age, state, overdue):
    verdict = classify(task, NOW - success_age, status, NOW - run_age, NOW, grace_intervals=2)
    assert (verdict.state, verdict.overdue, verdict.needs_alert) == (state, overdue, overdue)
    assert verdict.deadline == NOW - success_age + verdict.grace
    assert verdict.reason


def test_a_disabled_task_is_disabled_and_never_alerts():
    task = _task("0 * * * *", enabled=False)
    verdict = classify(task, NOW - timedelta(days=30), "FAILURE", NOW, NOW, grace_intervals=2)
    assert verdict.state == DISABLED
    assert not verdict.needs_alert


def test_never_run_is_not_late_without_a_watch_start():
    verdict = classify(HOURLY, None, None, None, NOW, grace_intervals=2)
    assert (verdict.state, verdict.overdue, verdict.deadline) == (NEVER_RUN, False, None)


@pytest.mark.parametrize(
    ("watched_for", "state", "overdue"),
    [(timedelta(hours=1), NEVER_RUN, False), (timedelta(hours=3), LATE, True)],
)
def test_never_run_becomes_late_once_watched_past_the_grace(watched_for, state, overdue):
    verdict = classify(HOURLY, None, None, None, NOW, 2, watching_since=NOW - watched_for)
    assert (verdict.state, verdict.overdue) == (state, overdue)


def test_never_succeeded_and_last_run_failed_is_failing():
    verdict = classify(HOURLY, None, "FAILURE", NOW - timedelta(minutes=1), NOW, 2)
    assert verdict.state == FAILING


def test_grace_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(health.GRACE_ENV, "3")
    success = NOW - timedelta(hours=2, minutes=30)
    verdict = classify(HOURLY, success, "SUCCESS", success, NOW)
    assert verdict.grace == timedelta(hours=3)
    assert verdict.state == HEALTHY
    monkeypatch.delenv(health.GRACE_ENV)
    assert classify(HOURLY, success, "SUCCESS", success, NOW).state == LATE  # default 2


@pytest.mark.parametrize("raw", ["0", "-1", "two", "inf", "nan"])
def test_a_bad_grace_fails_loudly_naming_the_variable(raw):
    with pytest.raises(HealthConfigError, match=health.GRACE_ENV):
        grace_intervals_from_env({health.GRACE_ENV: raw})


def test_a_fractional_grace_is_allowed():
    assert grace_intervals_from_env({health.GRACE_ENV: "1.5"}) == 1.5
    assert grace_intervals_from_env({}) == 2.0


def test_the_module_imports_neither_django_nor_dagster():
    import ast
    from pathlib import Path

    tree = ast.parse(Path(health.__file__).read_text())
    imported = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not {m for m in imported if m.split(".")[0] in {"django", "dagster"}}
