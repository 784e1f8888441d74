"""The schedule policies on the Dagster side: tick skips, and the failure-policy sensor.

The rules are :mod:`validibot.tasks.policies` (shared with ``sync_schedules`` and the status
command); this module applies them to a Dagster instance:

- :func:`tick_skip_reason` is called by every generated schedule: a tick older than the
  task's catch-up window, or one the overlap policy refuses, is skipped with that reason.
- ``validibot_failure_policy`` (every 30 s) counts each watched task's consecutive failed
  runs. A task with ``pause_after_failures=N`` gets its schedule stopped on the instance after
  N, with one ``paused`` alert; the reason goes into the sensor's cursor, where
  ``sync_schedules --check`` reads it. A ``privacy=True`` task is never stopped: it alerts
  with rising severity instead (WARNING, ERROR, CRITICAL). ``validibot-ops resume <task>``
  (:func:`resume`) starts a paused schedule again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from validibot.tasks import vocabulary
from validibot.tasks.policies import (
    FAILURE_POLICY_SENSOR,
    FailurePolicyState,
    FinishedRun,
    InProgressRun,
    catchup_skip_reason,
    failure_streak,
    overlap_skip_reason,
    pause_reason,
    privacy_level,
)
from validibot.tasks.registry import MaintenanceTask
from validibot_ops.alerts import (
    PAUSED,
    PRIVACY_FAILING,
    RECOVERED,
    Alert,
    build_channels,
    deliver,
    ui_link,
)
from validibot_ops.dagster_internals import (
    InstigatorState,
    InstigatorStatus,
    InstigatorType,
    RemoteInstigatorOrigin,
    RemoteRepositoryOrigin,
    ScheduleInstigatorData,
)
from validibot_ops.tags import TASK_TAG

FAILURE_POLICY_INTERVAL_SECONDS = 30
HISTORY_LIMIT = 100
"""Finished runs read per task and tick: enough for any streak an operator cares about."""

RUNNING_STATES = {InstigatorStatus.RUNNING, InstigatorStatus.DECLARED_IN_CODE}

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


# -- schedule ticks ----------------------------------------------------------------------------


def tick_skip_reason(
    context: dg.ScheduleEvaluationContext,
    task: MaintenanceTask,
    in_progress_statuses: Sequence[dg.DagsterRunStatus],
    now: datetime | None = None,
) -> str | None:
    """Why this tick must not launch a run: too old for its catch-up window, or the overlap
    policy (``skip``: any run in progress; ``buffer_one``: one already waiting)."""
    late = catchup_skip_reason(
        task.id,
        task.catchup_window_seconds,
        context.scheduled_execution_time,
        now or datetime.now(UTC),
    )
    if late:
        return late
    if task.overlap_policy == "allow":
        return None
    records = context.instance.get_run_records(
        dg.RunsFilter(tags={TASK_TAG: task.id}, statuses=list(in_progress_statuses)), limit=10
    )
    runs = [InProgressRun(r.dagster_run.run_id, r.dagster_run.status.value) for r in records]
    return overlap_skip_reason(task.id, task.overlap_policy, runs)


# -- schedule state on the instance ------------------------------------------------------------


def find_schedule_state(
    instance: dg.DagsterInstance, schedule_name: str, location_name: str | None = None
) -> InstigatorState | None:
    """The stored state of the schedule called ``schedule_name`` (in ``location_name``)."""
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE):
        location = state.origin.repository_origin.code_location_origin.location_name
        if state.instigator_name == schedule_name and location_name in (None, location):
            return state
    return None


def pause_schedule(
    instance: dg.DagsterInstance,
    task: MaintenanceTask,
    cron: str,
    context: dg.SensorEvaluationContext | None = None,
) -> bool:
    """Stop the task's schedule on the instance; ``False`` if it was not running.

    The stored state is stopped in place. A schedule the daemon never ticked has no stored
    state yet: one is written from the sensor's own code location, as the UI toggle does.
    """
    origin = context.code_location_origin if context is not None else None
    location = origin.location_name if origin is not None else None
    state = find_schedule_state(instance, task.schedule_name, location)
    if state is not None:
        if state.status not in RUNNING_STATES:
            return False
        data = ScheduleInstigatorData(cron_schedule=cron)
        instance.update_instigator_state(
            state.with_status(InstigatorStatus.STOPPED).with_data(data)
        )
        return True
    if origin is None or context is None or context.repository_name is None:
        raise RuntimeError(f"{task.schedule_name}: no stored state and no code location to stop")
    remote = RemoteInstigatorOrigin(
        RemoteRepositoryOrigin(origin, context.repository_name), task.schedule_name
    )
    instance.add_instigator_state(
        InstigatorState(
            remote, InstigatorType.SCHEDULE, InstigatorStatus.STOPPED, ScheduleInstigatorData(cron)
        )
    )
    return True


def schedule_is_stopped(instance: dg.DagsterInstance, task: MaintenanceTask) -> bool:
    """Whether a stored state says the schedule is stopped (no state: its code default)."""
    state = find_schedule_state(instance, task.schedule_name)
    return state is not None and state.status not in RUNNING_STATES


def failure_policy_cursor(instance: dg.DagsterInstance) -> str | None:
    """The failure-policy sensor's cursor on this instance (``None`` before its first tick)."""
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.instigator_name == FAILURE_POLICY_SENSOR and state.instigator_data:
            return getattr(state.instigator_data, "cursor", None)
    return None


# -- the failure-policy sensor -----------------------------------------------------------------


def finished_runs(instance: dg.DagsterInstance, task_id: str) -> list[FinishedRun]:
    """The task's finished runs, newest first."""
    statuses = [dg.DagsterRunStatus(name) for name in sorted(vocabulary.FINISHED_STATUSES)]
    records = instance.get_run_records(
        dg.RunsFilter(tags={TASK_TAG: task_id}, statuses=statuses), limit=HISTORY_LIMIT
    )
    return [
        FinishedRun(r.dagster_run.run_id, r.dagster_run.status.value, _dry(r.dagster_run, task_id))
        for r in records
    ]


def _dry(run: dg.DagsterRun, task_id: str) -> bool:
    config: dict[str, Any] = dict(run.run_config or {})
    ops: dict[str, Any] = config.get("ops") or {}
    return bool(((ops.get(task_id) or {}).get("config") or {}).get("dry_run"))


def build_failure_policy_sensor(
    tasks: Sequence[MaintenanceTask], clock: Clock = _utc_now
) -> dg.SensorDefinition:
    """One sensor for every task with ``pause_after_failures`` or ``privacy=True``.

    Args:
        tasks: the Dagster-backend tasks with the state their schedules really get (the
            incident overrides applied): a disabled task's schedule is never "paused".
        clock: the sensor's only source of "now" (the time written into a pause reason).
    """
    watched = [t for t in tasks if t.privacy or t.pause_after_failures is not None]

    @dg.sensor(
        name=FAILURE_POLICY_SENSOR,
        minimum_interval_seconds=FAILURE_POLICY_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        required_resource_keys={"django"},  # built only if an email is sent (lazy Django)
        description="Failure policy: stops the schedule of a task with pause_after_failures "
        "after that many consecutive failed runs (one alert; resume with `validibot-ops "
        "resume <task>`); privacy tasks are never paused and alert with rising severity "
        "(WARNING at 2, ERROR at 4, CRITICAL at 8 failures, then at every doubling).",
    )
    def _policy(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        state = FailurePolicyState.load(context.cursor)
        channels = build_channels(prepare_django=lambda: context.resources.django.ensure_django())
        notes = []
        for task in watched:
            note = apply_failure_policy(context, task, state, channels, clock)
            if note:
                notes.append(note)
        context.update_cursor(state.dump())
        paused = ", ".join(sorted(state.paused)) or "none"
        return dg.SkipReason("; ".join([*notes, f"paused: {paused}"]))

    return _policy


def apply_failure_policy(
    context: dg.SensorEvaluationContext,
    task: MaintenanceTask,
    state: FailurePolicyState,
    channels: list,
    clock: Clock = _utc_now,
) -> str | None:
    """Pause or escalate one task if its failure streak asks for it; returns what happened."""
    streak = failure_streak(finished_runs(context.instance, task.id), state.acted_on.get(task.id))
    if task.privacy:
        return _escalate(context, task, streak, state, channels)
    if task.id in state.paused:
        if not schedule_is_stopped(context.instance, task):
            del state.paused[task.id]  # resumed: the next N failures pause it again
            return f"{task.id} resumed"
        return None
    limit = task.pause_after_failures
    if limit is None or not task.enabled or len(streak) < limit:
        return None
    if not pause_schedule(context.instance, task, task.cron, context):
        return None  # stopped already (a UI toggle, an override): nothing to pause
    at = clock().isoformat(timespec="seconds")
    reason = pause_reason(task.id, len(streak), limit, streak[0], at)
    state.paused[task.id] = reason
    state.acted_on[task.id] = streak[0]
    alert = Alert(
        kind=PAUSED,
        task=task.id,
        status="PAUSED",
        summary=f"{task.schedule_name} paused after {len(streak)} consecutive failed runs",
        run_id=streak[0],
        error=reason,
        ui_url=ui_link(f"runs/{streak[0]}"),
    )
    deliver(alert, channels, context.log)
    return f"{task.id} paused"


def _escalate(
    context: dg.SensorEvaluationContext,
    task: MaintenanceTask,
    streak: list[str],
    state: FailurePolicyState,
    channels: list,
) -> str | None:
    """Privacy tasks: one alert each time the severity step rises; one when they recover."""
    previous = state.levels.get(task.id, 0)
    start = state.streak_start.get(task.id)
    ended = (
        not streak
        or len(streak) < previous
        or (start not in streak and len(streak) < HISTORY_LIMIT)
    )
    if previous and ended:  # the streak last alerted on has ended since
        del state.levels[task.id]
        state.streak_start.pop(task.id, None)
        previous = 0
        if not streak:
            alert = Alert(
                kind=RECOVERED,
                task=task.id,
                status="RECOVERED",
                summary=f"{task.id} (privacy) succeeded again after repeated failures",
            )
            deliver(alert, channels, context.log)
            return f"{task.id} recovered"
    level = privacy_level(len(streak))
    if level is None or level[0] <= previous:
        return None
    step, severity = level
    if step <= previous:
        return None
    state.levels[task.id] = step
    state.streak_start[task.id] = streak[-1]
    alert = Alert(
        kind=PRIVACY_FAILING,
        task=task.id,
        status=severity,
        summary=f"{task.id} deletes personal data and has failed {len(streak)} times in a "
        f"row ({severity}); it is never paused, so personal data is kept past its deadline "
        "until it succeeds",
        run_id=streak[0],
        error=f"consecutive failed runs: {', '.join(streak[:8])}",
        ui_url=ui_link(f"runs/{streak[0]}"),
    )
    deliver(alert, channels, context.log)
    return f"{task.id} {severity}"


# -- resume ------------------------------------------------------------------------------------


def resume(schedules: Any, task: MaintenanceTask) -> str:
    """Start the task's schedule (``schedules`` is a :class:`~validibot_ops.schedule_state.
    InstanceSchedules`); the sensor clears the pause on its next tick."""
    if schedules.status(task.schedule_name) == "RUNNING":
        return f"{task.schedule_name} is already running"
    schedules.start(task.schedule_name)
    return f"resumed {task.schedule_name}"
