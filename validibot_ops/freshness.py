"""Freshness through Dagster: a policy per task, judged by Dagster's freshness daemon.

Each task's asset (``validibot_maintenance/<id>``) gets a ``FreshnessPolicy.time_window`` whose
fail window is ``VALIDIBOT_ALERT_GRACE_INTERVALS`` (default 2) times the task's expected
interval (:func:`validibot.tasks.health.expected_interval`, from the cron the schedule really
runs, after the incident overrides file). Dagster's freshness daemon (on by default) evaluates
every policy every 30 s and stores the verdict (``PASS``/``FAIL``/``UNKNOWN``); the UI shows it on
the asset, and ``scheduled_task_status`` and ``doctor`` read the same verdict over GraphQL.

Why the policy and not ``build_last_update_freshness_checks`` with
``build_sensor_for_freshness_checks``: both are superseded in Dagster 1.13 by freshness
policies, and that sensor launches a *run* for every evaluation (one per task per grace
window: hundreds of runs a day through the Celery launcher, competing with maintenance runs
for queue slots and growing the run history). The daemon judges without runs. The
guarantees, checked one by one:

- late detection: ``FAIL`` once the last materialization is older than the fail window, within
  the daemon's 30 s interval (``FRESHNESS_DAEMON_INTERVAL_SECONDS``);
- dry runs do not count as fresh: the evaluator reads only the asset's last *materialization*,
  and a dry run records an ``AssetObservation`` (validibot_ops.ops), never a materialization;
- a disabled task, or one paused by the overrides file, gets no policy (``NOT_APPLICABLE``).

What Dagster does not do, and :func:`build_freshness_alert_sensor` adds (the only hand-written
part left):

- alerts: open-source Dagster stores freshness state changes but sends nothing (alerting on them
  is a Dagster+ feature), so the sensor turns each ``FAIL`` into one ``late`` alert and the next
  non-``FAIL`` into one ``recovered`` alert, through :mod:`validibot_ops.alerts`;
- a schedule stopped in the UI or by ``sync_schedules``: the daemon still reports ``FAIL`` (a
  policy knows nothing of schedules), so the sensor sends nothing for a task whose schedule is
  stopped, and the status command shows such a task as ``stopped``, not ``late``.

A task whose asset was never materialized is ``UNKNOWN`` to Dagster, not late: it is shown as
``never_run``; failed runs of it still alert through the run-failure sensor.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta

import dagster as dg

from validibot.tasks.health import GRACE_ENV, grace_intervals_from_env, task_expected_interval
from validibot.tasks.registry import MaintenanceTask
from validibot_ops.alerts import LATE, RECOVERED, Alert, build_channels, deliver, ui_link
from validibot_ops.dagster_internals import (
    FreshnessState,
    FreshnessStateRecord,
    InstigatorStatus,
    InstigatorType,
)
from validibot_ops.schedules import applied_overrides, effective_schedule
from validibot_ops.tags import ASSET_PREFIX, task_asset_key

FRESHNESS_ALERT_SENSOR_NAME = "validibot_freshness_alerts"
FRESHNESS_ALERT_INTERVAL_SECONDS = 60


def effective_tasks(tasks: Sequence[MaintenanceTask]) -> list[MaintenanceTask]:
    """``tasks`` with the cron and enabled state their schedules actually get."""
    overrides = applied_overrides(tasks).active
    result = []
    for task in tasks:
        cron, enabled = effective_schedule(task, overrides.get(task.id))
        result.append(replace(task, cron=cron, enabled=enabled))
    return result


def fail_window(task: MaintenanceTask, grace_intervals: float | None = None) -> timedelta:
    """How long the task's asset may go without a materialization: grace x expected interval."""
    grace = grace_intervals_from_env() if grace_intervals is None else grace_intervals
    return task_expected_interval(task) * grace


def build_freshness_policy(
    task: MaintenanceTask, grace_intervals: float | None = None
) -> dg.FreshnessPolicy | None:
    """The policy for one *effective* task (see :func:`effective_tasks`); ``None`` if it is
    not scheduled (disabled, paused by the overrides file, or not on the Dagster backend)."""
    if not task.enabled:
        return None
    # Dagster stores windows in whole seconds and refuses a window under one minute.
    window = max(fail_window(task, grace_intervals), timedelta(minutes=1))
    return dg.FreshnessPolicy.time_window(timedelta(seconds=int(window.total_seconds())))


def freshness_policies(tasks: Sequence[MaintenanceTask]) -> dict[str, dg.FreshnessPolicy]:
    """Task id -> policy, for the scheduled ``tasks`` (overrides applied)."""
    policies = {t.id: build_freshness_policy(t) for t in effective_tasks(tasks)}
    return {task_id: policy for task_id, policy in policies.items() if policy is not None}


# -- the alert sensor -------------------------------------------------------------------------


@dataclass
class AlertState:
    """The sensor cursor: which tasks have an open ``late`` alert, and since when."""

    alerted: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, cursor: str | None) -> AlertState:
        try:
            return cls(dict(json.loads(cursor or "{}").get("alerted", {})))
        except (ValueError, TypeError, AttributeError):
            return cls()  # an unreadable cursor starts afresh; it never crashes the tick

    def dump(self) -> str:
        return json.dumps({"alerted": self.alerted}, sort_keys=True)


def stopped_schedules(instance: dg.DagsterInstance) -> set[str]:
    """Names of schedules an operator stopped (UI, ``sync_schedules``).

    A schedule running by default has no stored state, or one ``DECLARED_IN_CODE``; only a
    stored ``STOPPED`` means someone turned it off. Matched by name: a schedule's name is
    ``<task id>_schedule``, unique in the one code location the deployment loads.
    """
    states = instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE)
    return {s.name for s in states if s.status == InstigatorStatus.STOPPED}


def _late_alert(task: MaintenanceTask, window: timedelta, since: str) -> Alert:
    return Alert(
        kind=LATE,
        task=task.id,
        status="LATE",
        summary=f"{task.id} has had no successful run for {window} "
        f"({GRACE_ENV} x its cron interval)",
        error=f"Dagster's freshness policy failed at {since}",
        ui_url=ui_link(f"assets/{ASSET_PREFIX}/{task.id}"),
    )


def _recovered_alert(instance: dg.DagsterInstance, task: MaintenanceTask, since: str) -> Alert:
    latest = instance.get_latest_materialization_event(task_asset_key(task))
    run_id = latest.run_id if latest is not None else None
    return Alert(
        kind=RECOVERED,
        task=task.id,
        status="RECOVERED",
        summary=f"{task.id} succeeded again (late since {since})",
        run_id=run_id,
        ui_url=ui_link(f"runs/{run_id}") if run_id else ui_link(f"assets/{ASSET_PREFIX}/{task.id}"),
    )


def _change(
    instance: dg.DagsterInstance,
    task: MaintenanceTask,
    record: FreshnessStateRecord | None,
    state: AlertState,
    window: timedelta,
) -> Alert | None:
    """The alert to send when the task's verdict crossed FAIL either way (``state`` updated)."""
    failing = record is not None and record.freshness_state == FreshnessState.FAIL
    if record is not None and failing and task.id not in state.alerted:
        since = record.updated_at.isoformat(timespec="seconds")
        state.alerted[task.id] = since
        return _late_alert(task, window, since)
    if not failing and task.id in state.alerted:
        return _recovered_alert(instance, task, state.alerted.pop(task.id))
    return None


def build_freshness_alert_sensor(tasks: Sequence[MaintenanceTask]) -> dg.SensorDefinition:
    """One sensor turning the freshness daemon's verdicts into alerts (see the module doc)."""
    watched = [t for t in effective_tasks(tasks) if build_freshness_policy(t) is not None]
    windows = {t.id: fail_window(t) for t in watched}

    @dg.sensor(
        name=FRESHNESS_ALERT_SENSOR_NAME,
        minimum_interval_seconds=FRESHNESS_ALERT_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        required_resource_keys={"django"},  # built only if an email is sent (lazy Django)
        description="Alerts once when Dagster's freshness daemon finds a scheduled task's asset "
        "stale (no successful non-dry run within VALIDIBOT_ALERT_GRACE_INTERVALS of its cron "
        "interval), and once when it is fresh again. Tasks whose schedule is stopped are not "
        "reported.",
    )
    def _alerts(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        state = AlertState.load(context.cursor)
        records = context.instance.get_freshness_state_records([task_asset_key(t) for t in watched])
        stopped = stopped_schedules(context.instance)
        channels = build_channels(prepare_django=lambda: context.resources.django.ensure_django())
        for task_id in set(state.alerted) - {t.id for t in watched}:
            del state.alerted[task_id]  # paused or disabled since: no longer judged
        changes = {"raised": 0, "cleared": 0}
        for task in watched:
            if task.schedule_name in stopped:
                state.alerted.pop(task.id, None)  # an operator's choice: nothing to report
                continue
            record = records.get(task_asset_key(task))
            alert = _change(context.instance, task, record, state, windows[task.id])
            if alert is not None:
                deliver(alert, channels, context.log)
                changes["raised" if alert.kind == LATE else "cleared"] += 1
        context.update_cursor(state.dump())
        n_stopped = len([t for t in watched if t.schedule_name in stopped])
        return dg.SkipReason(
            f"watched {len(watched)}, late {len(state.alerted)}, raised {changes['raised']}, "
            f"cleared {changes['cleared']}, stopped {n_stopped}"
        )

    return _alerts
