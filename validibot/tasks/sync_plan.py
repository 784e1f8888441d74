"""Reconcile Dagster schedule states with the registry: a pure plan and a readable diff.

Both ``manage.py sync_schedules`` (over GraphQL) and ``validibot-ops sync-schedules`` (on the
Dagster instance directly) observe the schedules' current states, hand them to
:func:`plan_schedules`, print :meth:`SchedulePlan.render` and apply the plan's changes. Nothing
here talks to Dagster or Django, so the rules are tested once and shared by both paths.

Rules:

- An enabled task's schedule should be RUNNING, a disabled one's STOPPED: a toggle made in the
  UI is drift and a sync undoes it.
- An active incident override (``VALIDIBOT_SCHEDULE_OVERRIDES``, or a schedule the code
  location tagged ``validibot/override``) is drift too, always: ``--check`` fails until the
  override is removed. Sync keeps the running state the override asks for (it does not undo
  an incident pause behind the operator's back) and says how to end it.
- A schedule the failure policy paused (``pause_after_failures``) is drift with the pause's
  reason; sync leaves it stopped: ``validibot-ops resume <task>`` restarts it.
- A cron that differs from the registry's (and from any override's), or a schedule missing
  from the code location, is drift only a code-location reload fixes; sync reports it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from validibot.tasks.overrides import OVERRIDES_ENV, ScheduleOverride
from validibot.tasks.registry import MaintenanceTask
from validibot.tasks.vocabulary import GENERATED_SCHEDULES

RUNNING = "RUNNING"
STOPPED = "STOPPED"
START = "start"
STOP = "stop"


@dataclass(frozen=True)
class ObservedSchedule:
    """One schedule as the Dagster instance / webserver currently sees it.

    Attributes:
        name: the schedule name (``<task id>_schedule``).
        status: ``RUNNING`` or ``STOPPED`` (stored state, else the code's default).
        default_status: the status the loaded code declares (``RUNNING``/``STOPPED``).
        cron: the cron the loaded code location uses.
        override: the ``validibot/override`` tag's value when the code location applied an
            incident override to this schedule, else ``""``.
        paused_reason: why the failure policy paused this schedule (the
            ``validibot_failure_policy`` sensor's cursor), else ``""``.
    """

    name: str
    status: str
    default_status: str | None = None
    cron: str | None = None
    override: str = ""
    paused_reason: str = ""


@dataclass(frozen=True)
class Change:
    """A start or stop that makes one schedule match the registry."""

    task_id: str
    schedule_name: str
    action: str
    current: str
    desired: str
    reason: str

    def line(self) -> str:
        return (
            f"~ {self.schedule_name}: {self.current} -> {self.desired} "
            f"({self.action}; {self.reason})"
        )


@dataclass(frozen=True)
class Drift:
    """Drift a start/stop cannot fix (an override, a cron or a missing schedule)."""

    task_id: str
    schedule_name: str
    message: str

    def line(self) -> str:
        return f"! {self.schedule_name}: {self.message}"


@dataclass(frozen=True)
class SchedulePlan:
    """What a sync would do, and what it cannot fix."""

    changes: tuple[Change, ...] = ()
    drift: tuple[Drift, ...] = ()
    in_sync: tuple[str, ...] = ()
    extra: tuple[str, ...] = field(default=())
    """Schedules Dagster knows that no registry task owns (reported, never touched)."""

    @property
    def drifted(self) -> bool:
        return bool(self.changes or self.drift)

    def diff_lines(self) -> list[str]:
        return [c.line() for c in self.changes] + [d.line() for d in self.drift]

    def summary(self) -> str:
        starts = sum(c.action == START for c in self.changes)
        stops = len(self.changes) - starts
        # A schedule can need a start and have drift a start cannot fix: count it once.
        names = {c.schedule_name for c in self.changes} | {d.schedule_name for d in self.drift}
        total = len(names | set(self.in_sync))
        return (
            f"{total} schedules: {len(self.in_sync)} in sync, {starts} to start, "
            f"{stops} to stop, {len(self.drift)} other drift"
        )

    def render(self) -> str:
        """The diff (one line per drifted schedule) followed by a one-line summary."""
        lines = self.diff_lines()
        lines += [f"? {name}: not in the registry (left alone)" for name in self.extra]
        return "\n".join([*lines, self.summary()])


def _status(enabled: bool) -> str:
    return RUNNING if enabled else STOPPED


def desired_status(
    task: MaintenanceTask,
    override: ScheduleOverride | None,
    observed: ObservedSchedule | None,
) -> tuple[str, str]:
    """The status a sync aims for, and why (registry, or the override that is active)."""
    if override is not None and override.enabled is not None:
        return _status(override.enabled), f"override enabled={override.enabled}"
    if observed is not None and observed.override and observed.default_status:
        return observed.default_status, f"code location override ({observed.override})"
    return _status(task.enabled), f"registry enabled={task.enabled}"


def _override_drift(
    task: MaintenanceTask,
    override: ScheduleOverride | None,
    observed: ObservedSchedule | None,
) -> Drift | None:
    if override is None and not (observed and observed.override):
        return None
    what = override.describe() if override is not None else observed.override if observed else ""
    return Drift(
        task.id,
        task.schedule_name,
        f"incident override active ({what}); remove it from ${OVERRIDES_ENV} and reload "
        "the code location to return to the registry",
    )


def _cron_drift(
    task: MaintenanceTask,
    override: ScheduleOverride | None,
    observed: ObservedSchedule,
) -> Drift | None:
    expected = override.cron if override is not None and override.cron else task.cron
    if observed.cron is None or observed.cron == expected or observed.override:
        return None
    return Drift(
        task.id,
        task.schedule_name,
        f"cron {observed.cron!r} in Dagster, expected {expected!r}; reload the code location",
    )


def plan_task(
    task: MaintenanceTask,
    observed: ObservedSchedule | None,
    override: ScheduleOverride | None = None,
) -> tuple[Change | None, list[Drift]]:
    """The change (if any) and the unfixable drift for one task's schedule."""
    if observed is None:
        missing = "missing from the Dagster code location; reload it (or check the workspace)"
        return None, [Drift(task.id, task.schedule_name, missing)]
    drift = [
        d
        for d in (_override_drift(task, override, observed), _cron_drift(task, override, observed))
        if d
    ]
    desired, reason = desired_status(task, override, observed)
    if observed.paused_reason and observed.status == STOPPED and desired == RUNNING:
        # Paused after repeated failures: drift with its reason, never restarted by a sync.
        return None, [*drift, Drift(task.id, task.schedule_name, observed.paused_reason)]
    if observed.status == desired:
        return None, drift
    action = START if desired == RUNNING else STOP
    return Change(task.id, task.schedule_name, action, observed.status, desired, reason), drift


def plan_schedules(
    tasks: Iterable[MaintenanceTask],
    observed: Mapping[str, ObservedSchedule],
    overrides: Mapping[str, ScheduleOverride] | None = None,
) -> SchedulePlan:
    """Compare every task's schedule (keyed by schedule name in ``observed``) to the registry.

    Args:
        tasks: the tasks Dagster schedules (``get_tasks_for_backend("dagster")``).
        observed: the schedules' current states, by schedule name.
        overrides: the incident overrides in force (``load_overrides()``), by task id.
    """
    overrides = overrides or {}
    changes: list[Change] = []
    drift: list[Drift] = []
    in_sync: list[str] = []
    names: set[str] = set()
    for task in tasks:
        names.add(task.schedule_name)
        change, task_drift = plan_task(
            task, observed.get(task.schedule_name), overrides.get(task.id)
        )
        changes += [change] if change else []
        drift += task_drift
        if change is None and not task_drift:
            in_sync.append(task.schedule_name)
    extra = tuple(sorted(set(observed) - names - set(GENERATED_SCHEDULES)))
    return SchedulePlan(tuple(changes), tuple(drift), tuple(in_sync), extra)


def apply_plan(
    plan: SchedulePlan, start: Callable[[str], object], stop: Callable[[str], object]
) -> list[str]:
    """Start/stop each planned schedule through the given callables; one line per change."""
    done = []
    for change in plan.changes:
        (start if change.action == START else stop)(change.schedule_name)
        verb = "started" if change.action == START else "stopped"
        done.append(f"{verb} {change.schedule_name} ({change.reason})")
    return done
