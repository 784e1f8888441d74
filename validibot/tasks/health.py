"""The freshness window of a scheduled task, and the words every health view uses.

Pure Python (no Django, no Dagster), like the registry. Lateness itself is judged by Dagster:
``validibot_ops.freshness`` gives each task's asset a freshness policy whose window is
:func:`task_expected_interval` times ``VALIDIBOT_ALERT_GRACE_INTERVALS`` (default 2), and
Dagster's freshness daemon evaluates it. The alert sensor, ``scheduled_task_status`` and
``doctor`` all read that one verdict; :func:`task_state` only names it, the same way for all.

    >>> expected_interval("0 3 * * *", "America/New_York")   # the fall-back day is 25 h
    datetime.timedelta(days=1, seconds=3600)
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from validibot.tasks.registry import MaintenanceTask, iter_fire_times
from validibot.tasks.vocabulary import FAILED_STATUSES

GRACE_ENV = "VALIDIBOT_ALERT_GRACE_INTERVALS"
DEFAULT_GRACE_INTERVALS = 2.0

HEALTHY = "healthy"
LATE = "late"
FAILING = "failing"
DISABLED = "disabled"
STOPPED = "stopped"
NEVER_RUN = "never_run"
PENDING = "pending"
STATES = (HEALTHY, LATE, FAILING, DISABLED, STOPPED, NEVER_RUN, PENDING)
"""Every value :func:`task_state` can return."""
UNHEALTHY = frozenset({LATE, FAILING})
"""States ``scheduled_task_status --fail-on-unhealthy`` and ``doctor`` fail on."""

# Dagster's freshness verdict as GraphQL names it (``AssetHealthStatus``).
FRESH = "HEALTHY"
FRESH_WARNING = "WARNING"
STALE = "DEGRADED"
FRESHNESS_UNKNOWN = "UNKNOWN"
FRESHNESS_NOT_APPLICABLE = "NOT_APPLICABLE"

WINDOW = timedelta(days=366)
"""A year of fire times covers both DST changes and every weekly/monthly pattern."""
MAX_SAMPLES = 2000
"""Enough for sub-hourly crons, whose gaps are the same all year (DST moves wall clocks, not
the elapsed time between two minutes); caps the work for ``* * * * *``."""
_WINDOW_START = datetime(2025, 1, 1)  # fixed, so the answer is a property of the cron alone


class HealthConfigError(ValueError):
    """``VALIDIBOT_ALERT_GRACE_INTERVALS`` is not a positive number."""


def grace_intervals_from_env(environ: dict[str, str] | None = None) -> float:
    """``VALIDIBOT_ALERT_GRACE_INTERVALS`` as a positive float (default 2).

    Raises:
        HealthConfigError: the variable is set but is not a positive number.
    """
    raw = (os.environ if environ is None else environ).get(GRACE_ENV, "").strip()
    if not raw:
        return DEFAULT_GRACE_INTERVALS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise HealthConfigError(f"{GRACE_ENV}={raw!r}: expected a positive number such as 2")
    return value


def expected_interval(cron: str, timezone: str = "UTC") -> timedelta:
    """The longest elapsed time between two consecutive fire times of ``cron`` in ``timezone``.

    Fire times are sampled over a year (or :data:`MAX_SAMPLES` of them, whichever is shorter)
    and compared as instants, so a daily job in a DST zone gets 25 hours (the fall-back day),
    and an every-5-minutes job gets 5 minutes whatever the clocks do. A repeated wall-clock
    time at fall-back counts once for crons with fixed hours and twice for hourly ones,
    as Dagster's scheduler runs them.
    """
    return _expected_interval(cron, timezone)


@lru_cache(maxsize=256)
def _expected_interval(cron: str, timezone: str) -> timedelta:
    fires = _fire_times(cron, timezone)
    if len(fires) < 2:
        raise ValueError(f"cron {cron!r} fires fewer than twice; it has no interval")
    # Instants, not wall clocks: Python subtracts two datetimes sharing a tzinfo as naive.
    instants = [fire.astimezone(UTC) for fire in fires]
    return max(later - earlier for earlier, later in zip(instants, instants[1:], strict=False))


def _fire_times(cron: str, timezone: str) -> list[datetime]:
    start = _WINDOW_START.replace(tzinfo=ZoneInfo(timezone))
    fires: list[datetime] = []
    for fire in iter_fire_times(cron, timezone, start):
        fires.append(fire)
        if len(fires) >= MAX_SAMPLES or (len(fires) >= 2 and fire - start >= WINDOW):
            break
    return fires


def task_expected_interval(task: MaintenanceTask) -> timedelta:
    """:func:`expected_interval` of the task's cron in the task's timezone."""
    return expected_interval(task.cron, task.timezone)


def task_state(
    *,
    enabled: bool,
    schedule_running: bool,
    freshness: str | None,
    last_run_status: str | None,
) -> str:
    """Name the state of one task from Dagster's facts; no clock, no thresholds here.

    Args:
        enabled: the registry entry's ``enabled``.
        schedule_running: the task's schedule is running in Dagster.
        freshness: Dagster's freshness verdict on the task's asset (GraphQL
            ``freshnessStatus``: ``HEALTHY``, ``WARNING``, ``DEGRADED``, ``UNKNOWN``,
            ``NOT_APPLICABLE``), or ``None`` when there is none.
        last_run_status: the last finished run's status (any case), or ``None``.

    Returns:
        ``disabled``; ``failing`` (the last finished run failed); ``stopped`` (enabled, but
        its schedule is stopped: never ``late``, the alert sensor stays silent too);
        ``late`` (Dagster's freshness policy fails); ``never_run`` (no run finished yet) or
        ``pending`` (runs finished, but Dagster has no verdict yet: no real run materialized the
        asset, or the freshness daemon has not evaluated it); else ``healthy``. A dry run never
        counts: it materializes nothing.
    """
    if not enabled:
        return DISABLED
    if (last_run_status or "").upper() in FAILED_STATUSES:
        return FAILING
    if not schedule_running:
        return STOPPED
    if freshness == STALE:
        return LATE
    if freshness in {None, FRESHNESS_UNKNOWN}:
        return PENDING if last_run_status else NEVER_RUN
    return HEALTHY
