"""Sensors generated from the registry: a dead man's switch and run-failure alerts.

Both sensors run by default and deliver through :mod:`validibot_ops.alerts` (the Dagster log
always; email and webhook when configured). See docs/operations.md, "Monitoring and alerts".

- ``validibot_dead_mans_switch`` (every 60 s): for each enabled task, finds the last successful
  (non dry-run) run tagged ``validibot/task=<id>`` and classifies the task with
  :func:`validibot.tasks.health.classify`, the rule the status command shares. One
  ``late`` alert when a task becomes overdue, one ``recovered`` alert when a success arrives;
  the sensor cursor remembers which tasks are alerted, so nothing repeats every tick.
- ``validibot_run_failure_alerts`` (every 15 s): one ``run_failed`` alert per failed run of a
  maintenance job, with the run id and the step errors.
- ``validibot_failure_policy`` (every 30 s): pause after N failures, privacy escalation
  (:mod:`validibot_ops.policies`).

Lag (dagster-io issues; mitodl/ol-infrastructure PR #5603): a run-status sensor handles at most
``DAGSTER_RUN_STATUS_SENSOR_PROCESS_LIMIT`` (default 5) matching runs per tick, and stops a
tick early when its function returns something. This one returns ``None`` and ticks every
15 s, i.e. up to 20 failures a minute; raise the env var if a burst can exceed that.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from validibot.tasks import vocabulary
from validibot.tasks.health import classify, grace_intervals_from_env
from validibot.tasks.overrides import load_overrides
from validibot.tasks.registry import MaintenanceTask
from validibot_ops.alerts import (
    LATE,
    RECOVERED,
    RUN_FAILED,
    Alert,
    build_channels,
    deliver,
    ui_link,
)
from validibot_ops.policies import build_failure_policy_sensor
from validibot_ops.resources import DjangoResource
from validibot_ops.schedules import effective_schedule
from validibot_ops.tags import ASSET_PREFIX, TASK_TAG

DEAD_MANS_SWITCH_NAME = "validibot_dead_mans_switch"
RUN_FAILURE_SENSOR_NAME = "validibot_run_failure_alerts"
DEAD_MANS_SWITCH_INTERVAL_SECONDS = 60
RUN_FAILURE_INTERVAL_SECONDS = 15
SUCCESS_LOOKBACK = 20
"""How many recent successful runs to scan for one that was not a dry run."""

FINISHED_STATUSES = [dg.DagsterRunStatus(name) for name in sorted(vocabulary.FINISHED_STATUSES)]

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def build_sensors(
    tasks: Sequence[MaintenanceTask], clock: Clock = _utc_now
) -> list[dg.SensorDefinition]:
    """The dead man's switch and the run-failure sensor for ``tasks``.

    Args:
        tasks: the Dagster-backend registry tasks (the incident overrides file, if any, is
            applied here too, so a paused or re-timed schedule is judged as it really runs).
        clock: the dead man's switch's only source of "now" (tests pass a fixed one).
    """
    watched = effective_tasks(tasks)
    return [
        build_dead_mans_switch_sensor(watched, clock),
        build_run_failure_sensor(tasks),
        build_failure_policy_sensor(watched),  # pause after failures, privacy escalation
    ]


def effective_tasks(
    tasks: Sequence[MaintenanceTask],
) -> list[MaintenanceTask]:
    """``tasks`` with the cron and enabled state their schedules actually get."""
    overrides = load_overrides(known_ids={t.id for t in tasks})
    result = []
    for task in tasks:
        cron, enabled = effective_schedule(task, overrides.get(task.id))
        result.append(replace(task, cron=cron, enabled=enabled))
    return result


# -- dead man's switch ------------------------------------------------------------------------


@dataclass
class SwitchState:
    """The dead man's switch cursor: when each task was first watched, which are alerted."""

    first_seen: dict[str, str] = field(default_factory=dict)
    alerted: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, cursor: str | None) -> SwitchState:
        try:
            data = json.loads(cursor or "{}")
            return cls(dict(data.get("first_seen", {})), dict(data.get("alerted", {})))
        except (ValueError, TypeError, AttributeError):
            return cls()  # an unreadable cursor restarts the watch; it never crashes the tick

    def dump(self) -> str:
        return json.dumps({"first_seen": self.first_seen, "alerted": self.alerted}, sort_keys=True)

    def watching_since(self, task_id: str, now: datetime) -> datetime:
        return datetime.fromisoformat(self.first_seen.setdefault(task_id, now.isoformat()))

    def forget(self, task_id: str) -> None:
        self.first_seen.pop(task_id, None)
        self.alerted.pop(task_id, None)


@dataclass(frozen=True)
class RunFacts:
    """What the health rule needs from a task's run history."""

    last_success_at: datetime | None
    last_success_run_id: str | None
    last_run_status: str | None
    last_run_at: datetime | None


def _finished_at(record: dg.RunRecord) -> datetime:
    stamp = record.end_time or record.update_timestamp.timestamp()
    return datetime.fromtimestamp(stamp, UTC)


def _is_dry_run(run: dg.DagsterRun, task_id: str) -> bool:
    config: dict[str, Any] = dict(run.run_config or {})
    ops: dict[str, Any] = config.get("ops") or {}
    return bool(((ops.get(task_id) or {}).get("config") or {}).get("dry_run"))


def run_facts(instance: dg.DagsterInstance, task_id: str) -> RunFacts:
    """The last non dry-run success and the last finished run, found by the task tag."""
    tags = {TASK_TAG: task_id}
    last = instance.get_run_records(dg.RunsFilter(tags=tags, statuses=FINISHED_STATUSES), limit=1)
    successes = instance.get_run_records(
        dg.RunsFilter(tags=tags, statuses=[dg.DagsterRunStatus.SUCCESS]), limit=SUCCESS_LOOKBACK
    )
    success = next((r for r in successes if not _is_dry_run(r.dagster_run, task_id)), None)
    return RunFacts(
        last_success_at=_finished_at(success) if success else None,
        last_success_run_id=success.dagster_run.run_id if success else None,
        last_run_status=last[0].dagster_run.status.value if last else None,
        last_run_at=_finished_at(last[0]) if last else None,
    )


def _asset_link(task_id: str) -> str | None:
    return ui_link(f"assets/{ASSET_PREFIX}/{task_id}")


def build_dead_mans_switch_sensor(
    tasks: Sequence[MaintenanceTask], clock: Clock = _utc_now
) -> dg.SensorDefinition:
    """One sensor watching every enabled task for a success within its grace window."""

    @dg.sensor(
        name=DEAD_MANS_SWITCH_NAME,
        minimum_interval_seconds=DEAD_MANS_SWITCH_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        required_resource_keys={"django"},  # built only if an email is sent (lazy Django)
        description="Dead man's switch: alerts once when an enabled maintenance task has had "
        "no successful run within VALIDIBOT_ALERT_GRACE_INTERVALS (default 2) of its cron "
        "interval, and once more when it recovers.",
    )
    def _switch(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        now = clock()
        state = SwitchState.load(context.cursor)
        grace = grace_intervals_from_env()
        channels = build_channels(prepare_django=lambda: context.resources.django.ensure_django())
        counts = {"watched": 0, "alerted": 0, "raised": 0, "cleared": 0}
        for task in tasks:
            if not task.enabled:
                state.forget(task.id)
                continue
            counts["watched"] += 1
            change = _check_task(context, task, state, now, grace, channels)
            if change:
                counts[change] += 1
        counts["alerted"] = len(state.alerted)
        context.update_cursor(state.dump())
        return dg.SkipReason(", ".join(f"{key} {value}" for key, value in counts.items()))

    return _switch


def _check_task(
    context: dg.SensorEvaluationContext,
    task: MaintenanceTask,
    state: SwitchState,
    now: datetime,
    grace: float,
    channels: list,
) -> str | None:
    """Raise or clear the task's alert if its health changed; returns what happened."""
    facts = run_facts(context.instance, task.id)
    since = state.watching_since(task.id, now)
    health = classify(
        task,
        facts.last_success_at,
        facts.last_run_status,
        facts.last_run_at,
        now,
        grace,
        watching_since=since,
    )
    if health.needs_alert and task.id not in state.alerted:
        alert = Alert(
            kind=LATE,
            task=task.id,
            status="LATE",
            summary=f"{task.id} has had no successful run for {grace:g} intervals "
            f"({health.grace}); {health.state}",
            error=health.reason,
            ui_url=_asset_link(task.id),
        )
        deliver(alert, channels, context.log)
        state.alerted[task.id] = now.isoformat()
        return "raised"
    if not health.needs_alert and task.id in state.alerted:
        alert = Alert(
            kind=RECOVERED,
            task=task.id,
            status="RECOVERED",
            summary=f"{task.id} succeeded again (late since {state.alerted[task.id]})",
            run_id=facts.last_success_run_id,
            error=None,
            ui_url=ui_link(f"runs/{facts.last_success_run_id}")
            if facts.last_success_run_id
            else _asset_link(task.id),
        )
        deliver(alert, channels, context.log)
        del state.alerted[task.id]
        return "cleared"
    return None


# -- run failures -----------------------------------------------------------------------------


def failure_error(context: dg.RunFailureSensorContext) -> str:
    """The failed steps' error messages, else the run failure event's message."""
    messages: list[str] = []
    for event in context.get_step_failure_events():
        data: Any = event.event_specific_data
        error = getattr(data, "error", None)
        user = getattr(data, "user_failure_data", None)
        text = (getattr(user, "description", None) or "") or (
            error.message.strip() if error is not None else event.message or ""
        )
        messages.append(f"{event.step_key}: {text}" if event.step_key else text)
    if not messages and context.failure_event.message:
        messages.append(context.failure_event.message)
    return "\n".join(messages)[:2000] or "the run failed"


def build_run_failure_sensor(tasks: Sequence[MaintenanceTask]) -> dg.SensorDefinition:
    """One sensor sending one alert per failed run of a maintenance job.

    It looks at every failed run of the deployment and keeps those tagged ``validibot/task``
    with a known task id (every maintenance job's runs are). Watching only "this code
    location" would miss runs started by ``dagster job execute`` (they carry no code-location
    origin), and no job list has to be kept in step with the registry.
    """
    task_ids = {task.id for task in tasks}

    @dg.run_failure_sensor(
        name=RUN_FAILURE_SENSOR_NAME,
        minimum_interval_seconds=RUN_FAILURE_INTERVAL_SECONDS,
        monitor_all_code_locations=True,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Sends one alert (Dagster log, plus email/webhook when configured) per "
        "failed run of a maintenance job, with the run id and the error.",
    )
    def _on_failure(context: dg.RunFailureSensorContext, django: DjangoResource) -> None:
        run = context.dagster_run
        task_id = run.tags.get(TASK_TAG)
        if task_id not in task_ids:
            return None
        alert = Alert(
            kind=RUN_FAILED,
            task=task_id,
            status=run.status.value,
            summary=f"{task_id} run {run.run_id} failed",
            run_id=run.run_id,
            error=failure_error(context),
            ui_url=ui_link(f"runs/{run.run_id}"),
        )
        deliver(alert, build_channels(prepare_django=django.ensure_django), context.log)
        # Returning nothing lets Dagster handle the next failed run in this same tick
        # (a returned value ends the tick after one run).
        return None

    return _on_failure
