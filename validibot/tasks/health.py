"""Is each scheduled task healthy, late or failing? One answer for the sensor and the status view.

Pure Python (no Django, no Dagster), like the registry: the Dagster dead man's switch sensor
(``validibot_ops.sensors``) and the operator status command
(``scheduled_task_status``) both call :func:`classify`, so the UI alert and the command line
can never disagree about a task.

    >>> from datetime import datetime, timedelta, UTC
    >>> from validibot.tasks.registry import get_task
    >>> task = get_task("purge_expired_submissions")      # cron 0 * * * *
    >>> now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    >>> classify(task, now - timedelta(hours=3), "SUCCESS", now - timedelta(hours=3), now).state
    'late'

A task is *late* when no successful run happened within ``grace_intervals`` times its expected
interval (the longest gap between two consecutive fire times of its cron, in its timezone);
the default grace is 2 intervals, or ``VALIDIBOT_ALERT_GRACE_INTERVALS``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from validibot.tasks.registry import MaintenanceTask, iter_fire_times
from validibot.tasks.vocabulary import FAILED_STATUSES

GRACE_ENV = "VALIDIBOT_ALERT_GRACE_INTERVALS"
DEFAULT_GRACE_INTERVALS = 2.0

HEALTHY = "healthy"
LATE = "late"
FAILING = "failing"
DISABLED = "disabled"
NEVER_RUN = "never_run"
STATES = (HEALTHY, LATE, FAILING, DISABLED, NEVER_RUN)
"""Every value :attr:`TaskHealth.state` can take."""

"""Run statuses (any case) that count as a failed last run. CANCELED is an operator's choice,
not a failure, so it does not make a task *failing* (it still does not count as a success)."""

WINDOW = timedelta(days=366)
"""A year of fire times covers both DST changes and every weekly/monthly pattern."""
MAX_SAMPLES = 2000
"""Enough for sub-hourly crons, whose gaps are the same all year (DST moves wall clocks, not
the elapsed time between two minutes); caps the work for ``* * * * *``."""
_WINDOW_START = datetime(2025, 1, 1)  # fixed, so the answer is a property of the cron alone


class HealthConfigError(ValueError):
    """``VALIDIBOT_ALERT_GRACE_INTERVALS`` is not a positive number."""


@dataclass(frozen=True)
class TaskHealth:
    """The verdict on one task at ``now``.

    Attributes:
        task_id: the registry id.
        state: one of :data:`STATES`: ``healthy`` (a success within the grace window and the
            last run did not fail), ``late`` (no success within the grace window), ``failing``
            (the last finished run failed), ``disabled`` (the task does not run on a schedule),
            ``never_run`` (no run yet, and no reason yet to call that late).
        reason: one sentence for operators, naming the times involved.
        expected_interval: the longest gap between two fire times of the task's cron.
        grace: how long without a success before the task is overdue
            (``grace_intervals * expected_interval``).
        last_success_at: end of the last successful run, if any.
        last_run_at: end of the last finished run (any status), if any.
        last_run_status: that run's status as given (e.g. ``SUCCESS``, ``FAILURE``).
        deadline: when the task becomes (or became) overdue, if it can.
        overdue: no success within the grace window. This is what the dead man's switch
            alerts on; a ``failing`` task can be overdue too.
    """

    task_id: str
    state: str
    reason: str
    expected_interval: timedelta
    grace: timedelta
    last_success_at: datetime | None = None
    last_run_at: datetime | None = None
    last_run_status: str | None = None
    deadline: datetime | None = None
    overdue: bool = False

    @property
    def needs_alert(self) -> bool:
        """True when the dead man's switch should be raised for this task."""
        return self.overdue and self.state != DISABLED


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


def classify(
    task: MaintenanceTask,
    last_success_at: datetime | None,
    last_run_status: str | None,
    last_run_at: datetime | None,
    now: datetime,
    grace_intervals: float | None = None,
    *,
    watching_since: datetime | None = None,
) -> TaskHealth:
    """Classify one task from the facts about its runs; the single health rule of the project.

    Args:
        task: the registry entry (its ``cron``, ``timezone`` and ``enabled`` are used).
        last_success_at: when the last successful (non dry-run) run finished, or ``None``.
        last_run_status: status of the last finished run of any kind, e.g. ``"SUCCESS"``,
            ``"FAILURE"``, ``"CANCELED"`` (case-insensitive), or ``None`` if it never ran.
        last_run_at: when that last run finished, or ``None``.
        now: the current time (timezone-aware); the only clock this function reads.
        grace_intervals: how many expected intervals may pass without a success before the
            task is overdue; ``None`` reads ``VALIDIBOT_ALERT_GRACE_INTERVALS`` (default 2).
        watching_since: for a task that never succeeded, when something started expecting it
            to (the sensor passes the first tick that saw the task). Without it a task that
            never succeeded is ``never_run`` (or ``failing``), never ``late``.

    Returns:
        A :class:`TaskHealth`. Precedence: ``disabled``, then ``failing`` (last run failed),
        then ``late`` (overdue), then ``never_run``, else ``healthy``. ``overdue`` is set
        independently of the state, so a failing task past its window still trips the
        dead man's switch.
    """
    if grace_intervals is None:
        grace_intervals = grace_intervals_from_env()
    interval = task_expected_interval(task)
    grace = interval * grace_intervals
    status = (last_run_status or "").upper() or None
    facts: dict[str, Any] = {
        "task_id": task.id,
        "expected_interval": interval,
        "grace": grace,
        "last_success_at": last_success_at,
        "last_run_at": last_run_at,
        "last_run_status": status,
    }
    if not task.enabled:
        return TaskHealth(state=DISABLED, reason="the task's schedule is disabled", **facts)

    reference = last_success_at or watching_since
    deadline = reference + grace if reference is not None else None
    overdue = deadline is not None and now > deadline
    state, reason = _state_and_reason(status, last_success_at, last_run_at, deadline, overdue)
    return TaskHealth(state=state, reason=reason, deadline=deadline, overdue=overdue, **facts)


def _state_and_reason(
    status: str | None,
    last_success_at: datetime | None,
    last_run_at: datetime | None,
    deadline: datetime | None,
    overdue: bool,
) -> tuple[str, str]:
    since = f"last success {_fmt(last_success_at)}" if last_success_at else "no successful run yet"
    if status in FAILED_STATUSES and (
        last_success_at is None or last_run_at is None or last_run_at >= last_success_at
    ):
        late = f"; overdue since {_fmt(deadline)}" if overdue else ""
        return FAILING, f"last run {status} at {_fmt(last_run_at)}; {since}{late}"
    if overdue:
        return LATE, f"{since}; expected one by {_fmt(deadline)}"
    if last_success_at is None:
        return NEVER_RUN, "no successful run yet" + (
            f"; expected one by {_fmt(deadline)}" if deadline else ""
        )
    return HEALTHY, f"{since}; next deadline {_fmt(deadline)}"


def _fmt(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else "never"
