"""Schedule policies per task: overlap, catch-up window, pause after failures, privacy.

The rules live here, free of Django and Dagster, so the code location (schedules and the
failure-policy sensor), ``sync_schedules`` and ``scheduled_task_status`` share them:

- **overlap** (``MaintenanceTask.overlap_policy``): what a tick does while a run of the task
  is in progress. ``skip`` (default) skips it; ``buffer_one`` lets one run wait in the run
  queue behind the running one (the instance's ``validibot/exclusive`` tag limit holds it
  until the first ends, so it then takes the task's lock and really runs); ``allow`` starts
  runs side by side (no tag limit, no per-task lock: for tasks safe in parallel).
- **catch-up** (``catchup_window_seconds``): after downtime Dagster evaluates only the latest
  missed tick of a schedule, however old; a tick older than the window is skipped instead,
  with a reason naming the window. ``None`` catches up (one run).
- **pause after failures** (``pause_after_failures``): after N consecutive failed runs the
  failure-policy sensor stops the schedule, alerts once, and records why in its cursor, which
  ``sync_schedules --check`` reads to report the drift with that reason.
- **privacy** (``privacy=True``: the task deletes personal data): never paused; it alerts
  with rising severity as failures accumulate.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from validibot.tasks.vocabulary import WAITING_STATUSES

if TYPE_CHECKING:
    from validibot.tasks.registry import MaintenanceTask

OVERLAP_SKIP = "skip"
OVERLAP_BUFFER_ONE = "buffer_one"
OVERLAP_ALLOW = "allow"
OVERLAP_POLICIES: tuple[str, ...] = (OVERLAP_SKIP, OVERLAP_BUFFER_ONE, OVERLAP_ALLOW)

MIN_CATCHUP_WINDOW_SECONDS = 60
"""A shorter window would skip ordinary ticks that the daemon evaluates a few seconds late."""

FAILURE_POLICY_SENSOR = "validibot_failure_policy"
"""The sensor that pauses failing schedules and escalates failing privacy tasks; its cursor
holds the pauses (:class:`FailurePolicyState`)."""

RESUME_COMMAND = "validibot-ops resume {task_id}"

PRIVACY_LEVELS: tuple[tuple[int, str], ...] = ((2, "WARNING"), (4, "ERROR"), (8, "CRITICAL"))
"""Consecutive failures of a privacy task at which its severity rises (one alert per step);
past the last step a CRITICAL alert repeats at every doubling (16, 32, ...)."""


def overlap_problem(policy: object) -> str | None:
    if policy not in OVERLAP_POLICIES:
        return f"overlap_policy {policy!r} must be one of {', '.join(OVERLAP_POLICIES)}"
    return None


def policy_problems(task: MaintenanceTask) -> Iterable[str]:
    """What is wrong with the task's policy fields (the registry names the entry)."""
    problem = overlap_problem(task.overlap_policy)
    if problem:
        yield problem
    window = task.catchup_window_seconds
    whole = isinstance(window, int) and not isinstance(window, bool)
    if window is not None and not (whole and window >= MIN_CATCHUP_WINDOW_SECONDS):
        yield (
            f"catchup_window_seconds {window!r} must be None (catch up once) or a whole "
            f"number of seconds >= {MIN_CATCHUP_WINDOW_SECONDS}"
        )
    pause = task.pause_after_failures
    if pause is not None and (isinstance(pause, bool) or not isinstance(pause, int) or pause < 1):
        yield f"pause_after_failures {pause!r} must be None (never pause) or an integer >= 1"
    if not isinstance(task.privacy, bool):
        yield f"privacy {task.privacy!r} must be True or False"
    elif task.privacy and pause is not None:
        yield (
            "privacy=True tasks delete personal data and are never paused: remove "
            f"pause_after_failures={pause!r} (they alert with rising severity instead)"
        )


def describe_window(seconds: int | None) -> str:
    """``1h``, ``90m``, ``45s``; ``None`` is "catch up once"."""
    if seconds is None:
        return "catch up once"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def policy_fields(task: MaintenanceTask) -> dict[str, str]:
    """The policies as short strings, for the status table, JSON and UI descriptions."""
    if task.privacy:
        pause = "never (privacy: rising alerts)"
    elif task.pause_after_failures is None:
        pause = "never"
    else:
        pause = f"after {task.pause_after_failures} failures"
    return {
        "overlap": task.overlap_policy,
        "catchup": describe_window(task.catchup_window_seconds),
        "pause": pause,
        "privacy": "yes" if task.privacy else "no",
    }


def policy_summary(task: MaintenanceTask) -> str:
    """One line: ``overlap=skip; catch-up=1h; pause=never; privacy=yes``."""
    fields = policy_fields(task)
    return (
        f"overlap={fields['overlap']}; catch-up={fields['catchup']}; "
        f"pause={fields['pause']}; privacy={fields['privacy']}"
    )


# -- overlap and catch-up (schedule evaluation) ---------------------------------------------


@dataclass(frozen=True)
class InProgressRun:
    """A run of the task that has not finished."""

    run_id: str
    status: str


def overlap_skip_reason(
    task_id: str, policy: str, in_progress: Sequence[InProgressRun]
) -> str | None:
    """Why a tick must be skipped under ``policy`` given the task's unfinished runs, else None."""
    if policy == OVERLAP_ALLOW or not in_progress:
        return None
    if policy == OVERLAP_BUFFER_ONE:
        waiting = [run for run in in_progress if run.status in WAITING_STATUSES]
        if not waiting:
            return None  # the new run waits in the run queue behind the running one
        return (
            f"{task_id}: run {waiting[0].run_id} already waits ({waiting[0].status}) behind "
            "the running one; overlap_policy=buffer_one keeps at most one waiting"
        )
    run = in_progress[0]
    return (
        f"{task_id}: run {run.run_id} is still {run.status}; "
        "skipping this tick so two runs of one task never overlap (overlap_policy=skip)"
    )


def catchup_skip_reason(
    task_id: str, window_seconds: int | None, tick: datetime | None, now: datetime
) -> str | None:
    """Why a tick evaluated at ``now`` is too old to run, else None."""
    if window_seconds is None or tick is None:
        return None
    age = (now - tick).total_seconds()
    if age <= window_seconds:
        return None
    return (
        f"{task_id}: tick {tick.isoformat()} is {int(age)} s old, beyond its catch-up window "
        f"catchup_window_seconds={window_seconds} ({describe_window(window_seconds)}); "
        "skipped after downtime, the next tick runs as usual"
    )


# -- consecutive failures --------------------------------------------------------------------


@dataclass(frozen=True)
class FinishedRun:
    """A finished run of the task, newest first in the lists below."""

    run_id: str
    status: str
    dry_run: bool = False


def failure_streak(runs: Sequence[FinishedRun], since_run_id: str | None = None) -> list[str]:
    """The failed runs (newest first) since the last real success.

    A success that was not a dry run ends the streak (a manual one too); so does
    ``since_run_id``, the newest failure already acted on (a pause the operator resumed).
    Canceled runs and dry runs neither count nor end it.
    """
    failed: list[str] = []
    for run in runs:
        if run.run_id == since_run_id:
            break
        if run.status == "SUCCESS" and not run.dry_run:
            break
        if run.status == "FAILURE":
            failed.append(run.run_id)
    return failed


def privacy_level(failures: int) -> tuple[int, str] | None:
    """The escalation step reached by ``failures`` consecutive failures: (step, severity)."""
    reached = [(n, severity) for n, severity in PRIVACY_LEVELS if failures >= n]
    if not reached:
        return None
    step, severity = reached[-1]
    while step * 2 <= failures:
        step *= 2  # past the last level, CRITICAL again at every doubling
    return step, severity


def pause_reason(task_id: str, failures: int, limit: int, newest_run_id: str, at: str) -> str:
    return (
        f"paused by {FAILURE_POLICY_SENSOR} at {at} after {failures} consecutive failed runs "
        f"(pause_after_failures={limit}; last failed run {newest_run_id}); fix the cause, "
        f"then resume with `{RESUME_COMMAND.format(task_id=task_id)}`"
    )


@dataclass
class FailurePolicyState:
    """The failure-policy sensor's cursor (JSON), read by ``sync_schedules`` too.

    Attributes:
        paused: task id -> the reason its schedule was paused (until it runs again).
        acted_on: task id -> the newest failed run already counted by a pause, so a resumed
            schedule gets ``pause_after_failures`` fresh tries.
        levels: task id -> the privacy escalation step last alerted.
        streak_start: task id -> the oldest failed run of the streak ``levels`` is about.
    """

    paused: dict[str, str] = field(default_factory=dict)
    acted_on: dict[str, str] = field(default_factory=dict)
    levels: dict[str, int] = field(default_factory=dict)
    streak_start: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, cursor: str | None) -> FailurePolicyState:
        try:
            data = json.loads(cursor or "{}")
            return cls(
                {str(k): str(v) for k, v in dict(data.get("paused", {})).items()},
                {str(k): str(v) for k, v in dict(data.get("acted_on", {})).items()},
                {str(k): int(v) for k, v in dict(data.get("levels", {})).items()},
                {str(k): str(v) for k, v in dict(data.get("streak_start", {})).items()},
            )
        except (ValueError, TypeError, AttributeError):
            return cls()  # an unreadable cursor starts afresh; it never crashes a tick

    def dump(self) -> str:
        return json.dumps(
            {
                "paused": self.paused,
                "acted_on": self.acted_on,
                "levels": self.levels,
                "streak_start": self.streak_start,
            },
            sort_keys=True,
        )


def paused_reasons(cursor: str | None) -> dict[str, str]:
    """Task id -> why the failure policy paused its schedule, from the sensor's cursor."""
    return dict(FailurePolicyState.load(cursor).paused)
