"""Expected intervals from crons (DST included), the grace setting, and the state names."""

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
    PENDING,
    STATES,
    STOPPED,
    HealthConfigError,
    expected_interval,
    grace_intervals_from_env,
    task_state,
)
from validibot.tasks.registry import BUILTIN_TASKS

NEW_YORK = "America/New_York"


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


@pytest.mark.parametrize(
    ("enabled", "running", "freshness", "last", "state"),
    [
        (True, True, "HEALTHY", "SUCCESS", HEALTHY),
        (True, True, "WARNING", "SUCCESS", HEALTHY),
        (True, True, "DEGRADED", "SUCCESS", LATE),
        (True, True, "DEGRADED", "CANCELED", LATE),  # canceled: not failing, not fresh either
        (True, True, "UNKNOWN", None, NEVER_RUN),
        (True, True, None, None, NEVER_RUN),
        (True, True, "UNKNOWN", "SUCCESS", PENDING),  # e.g. only dry runs, or not judged yet
        (True, True, "HEALTHY", "failure", FAILING),  # the last run failed: that comes first
        (True, False, "DEGRADED", "SUCCESS", STOPPED),  # a stopped schedule is never late
        (True, False, "HEALTHY", "FAILURE", FAILING),
        (False, False, "DEGRADED", "FAILURE", DISABLED),
    ],
)
def test_task_state_names_dagsters_verdict(enabled, running, freshness, last, state):
    verdict = task_state(
        enabled=enabled, schedule_running=running, freshness=freshness, last_run_status=last
    )
    assert verdict == state
    assert verdict in STATES


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
