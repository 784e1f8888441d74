"""Outcome checks generated from the registry: is the data each task looks after clean?

For every :class:`~validibot.tasks.outcomes.OutcomeCheck` in a task's registry entry:

- an asset check ``<check name>`` on the task's asset (``validibot_maintenance/<id>``). It
  sets Django up through the :class:`DjangoResource` (never at import, so definitions load
  without a database), runs the check's query read-only (``validibot/core/outcomes.py``) and
  reports pass, WARN past ``warn_above`` or ERROR past ``error_above``, with the figures
  (``count``, ``oldest_overdue_hours``) as metadata, so the Checks tab plots them. A query that
  fails reports ERROR with the reason; it never fails the step or the code location.
- the same evaluation in each run of the task, right after its command (success or failure):
  the task's op logs the results (:func:`evaluate_task_checks`), so a run says whether the
  data is clean without a second run. (Earlier a sensor requested a check run after every
  task run, which doubled the runs in the queue and on the Runs page.)
- one job with every check, ``validibot_outcome_checks``, on its own schedule
  (``validibot_outcome_checks_schedule``, hourly), so a task that stopped running is still
  judged; the Checks tab's **Execute** runs one check on demand;
- the sensor ``validibot_outcome_check_alerts``: one alert through
  :mod:`validibot_ops.alerts` when a check stops passing, one ``recovered`` when it passes
  again (the sensor cursor remembers which checks are alerted, as the freshness alert sensor does).

The hourly check runs carry ``validibot/outcome-checks`` and never ``validibot/task``: they are
not runs of a task, so the task's concurrency limit, its freshness and its run-failure alerts
never see them.
"""

# No ``from __future__ import annotations`` here: Dagster reads the check function's
# annotations (context type, resource type) at decoration time and needs real types.

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from validibot.tasks.outcomes import ERROR, PASS, OutcomeCheck, OutcomeFigure, judge
from validibot.tasks.registry import DEFAULT_QUEUE, MaintenanceTask
from validibot_ops.alerts import RECOVERED, Alert, build_channels, deliver, ui_link
from validibot_ops.dagster_internals import (
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
)
from validibot_ops.resources import DjangoResource
from validibot_ops.tags import ASSET_PREFIX, CELERY_QUEUE_TAG, task_asset_key

CHECKS_TAG = "validibot/outcome-checks"
"""On every run of the checks job (``all``)."""
ALL_CHECKS_JOB = "validibot_outcome_checks"
ALL_CHECKS_SCHEDULE = f"{ALL_CHECKS_JOB}_schedule"
ALL_CHECKS_CRON = "7 * * * *"
"""Hourly, off the hour (the purges run on it)."""
ALERT_SENSOR = "validibot_outcome_check_alerts"
SENSOR_INTERVAL_SECONDS = 30
CHECK_FAILED = "check_failed"
"""The alert kind of a check that stopped passing (``status`` is ``WARN`` or ``ERROR``)."""
MAX_ERROR_LENGTH = 1000

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def check_key(task: MaintenanceTask, check: OutcomeCheck) -> dg.AssetCheckKey:
    return dg.AssetCheckKey(task_asset_key(task), check.name)


# -- one check --------------------------------------------------------------------------------


def query_figure(django: DjangoResource, check: OutcomeCheck, now: datetime) -> OutcomeFigure:
    """Run the check's query read-only, on fresh connections closed afterwards."""
    django.ensure_django()
    from django.db import close_old_connections, connections

    from validibot.core.outcomes import run_outcome_query

    close_old_connections()
    try:
        return run_outcome_query(check.query, now, timedelta(seconds=check.grace_seconds))
    finally:
        connections.close_all()


def check_result(check: OutcomeCheck, figure: OutcomeFigure) -> dg.AssetCheckResult:
    """The figure judged against the check's bounds, with the figures as plottable metadata."""
    verdict = judge(check, figure)
    overdue = f"; the oldest overdue by {figure.oldest_overdue_hours:.2f} h" if figure.count else ""
    bounds = f"{check.measure}: {check.bounds_text}"
    return dg.AssetCheckResult(
        passed=verdict == PASS,
        severity=dg.AssetCheckSeverity.ERROR if verdict == ERROR else dg.AssetCheckSeverity.WARN,
        description=f"{figure.count} offending row(s){overdue} ({bounds})",
        metadata={
            "count": dg.MetadataValue.int(figure.count),
            "oldest_overdue_hours": dg.MetadataValue.float(round(figure.oldest_overdue_hours, 4)),
        },
    )


def failed_query_result(exc: BaseException) -> dg.AssetCheckResult:
    """ERROR, with the reason: a check that cannot look cannot say the data is clean."""
    reason = f"the query failed: {type(exc).__name__}: {exc}".strip()[:MAX_ERROR_LENGTH]
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        description=reason,
        metadata={"error": dg.MetadataValue.text(reason)},
    )


def judge_now(django: DjangoResource, check: OutcomeCheck, now: datetime) -> dg.AssetCheckResult:
    """The check's verdict now; a query that fails is ERROR with its reason, never raised."""
    try:
        figure = query_figure(django, check, now)
    except Exception as exc:  # noqa: BLE001  (any failure is the check's ERROR, with reason)
        return failed_query_result(exc)
    return check_result(check, figure)


def evaluate_task_checks(
    task: MaintenanceTask, django: DjangoResource, clock: Clock = _utc_now
) -> list[dg.AssetCheckEvaluation]:
    """The task's checks as evaluations its own op logs after the command: the Checks tab, the
    alert sensor and ``doctor`` read them exactly as they read a check run's results."""
    evaluations = []
    for check in task.outcome_checks:
        result = judge_now(django, check, clock())
        evaluations.append(
            dg.AssetCheckEvaluation(
                asset_key=task_asset_key(task),
                check_name=check.name,
                passed=result.passed,
                metadata=result.metadata,
                severity=result.severity,
                description=result.description,
                blocking=False,
            )
        )
    return evaluations


def build_outcome_check(
    task: MaintenanceTask, check: OutcomeCheck, clock: Clock = _utc_now
) -> dg.AssetChecksDefinition:
    """The asset check ``check.name`` on the task's asset."""

    @dg.asset_check(
        asset=task_asset_key(task),
        name=check.name,
        description=f"{check.description} Bounds on {check.measure}: {check.bounds_text}; "
        f"grace {check.grace_text}. Query: {check.query}.",
        blocking=False,
        metadata={"query": check.query, "measure": check.measure, "bounds": check.bounds_text},
    )
    def _check(context: dg.AssetCheckExecutionContext, django: DjangoResource):
        result = judge_now(django, check, clock())
        if "error" in result.metadata:
            context.log.error(f"{task.id}.{check.name}: {result.description}")
        return result

    return _check


# -- jobs, schedule, sensors ------------------------------------------------------------------


@dataclass
class OutcomeChecks:
    """Everything generated for the registry's outcome checks."""

    checks: dict[dg.AssetCheckKey, tuple[MaintenanceTask, OutcomeCheck]] = field(
        default_factory=dict
    )
    definitions: list[dg.AssetChecksDefinition] = field(default_factory=list)


_JOB_TAGS = {CHECKS_TAG: "all", CELERY_QUEUE_TAG: DEFAULT_QUEUE}


def build_outcome_checks(
    tasks: Sequence[MaintenanceTask], clock: Clock = _utc_now
) -> OutcomeChecks:
    """One asset check per declared outcome check."""
    result = OutcomeChecks()
    for task in tasks:
        for check in task.outcome_checks:
            result.checks[check_key(task, check)] = (task, check)
            result.definitions.append(build_outcome_check(task, check, clock))
    return result


def build_check_definitions(
    tasks: Sequence[MaintenanceTask],
    executor: dg.ExecutorDefinition | None = None,
    clock: Clock = _utc_now,
) -> dg.Definitions:
    """The checks, their hourly job and schedule and the alert sensor, to merge into the code
    location's definitions (``validibot_ops/definitions.py``)."""
    built = build_outcome_checks(tasks, clock)
    if not built.definitions:
        return dg.Definitions()
    everything = dg.define_asset_job(
        ALL_CHECKS_JOB,
        selection=dg.AssetSelection.checks(*built.definitions),
        description="Every task's outcome checks (hourly, whether or not the tasks ran).",
        tags=_JOB_TAGS,
        executor_def=executor,
    )
    schedule = dg.ScheduleDefinition(
        name=ALL_CHECKS_SCHEDULE,
        cron_schedule=ALL_CHECKS_CRON,
        execution_timezone="UTC",
        job=everything,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Runs every outcome check hourly, whether or not the tasks ran.",
    )
    return dg.Definitions(
        asset_checks=built.definitions,
        jobs=[everything],
        schedules=[schedule],
        sensors=[build_check_alert_sensor(built)],
    )


# -- alerts -----------------------------------------------------------------------------------


@dataclass
class AlertState:
    """The alert sensor's cursor: the checks alerted, with the severity and time of the alert."""

    alerted: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, cursor: str | None) -> "AlertState":
        try:
            return cls(dict(json.loads(cursor or "{}").get("alerted", {})))
        except (ValueError, TypeError, AttributeError):
            return cls()  # an unreadable cursor forgets; it never crashes the tick

    def dump(self) -> str:
        return json.dumps({"alerted": self.alerted}, sort_keys=True)


@dataclass(frozen=True)
class Outcome:
    """The latest finished evaluation of one check."""

    passed: bool
    severity: str
    description: str
    run_id: str


def latest_outcome(
    record: AssetCheckExecutionRecord | None, instance: dg.DagsterInstance
) -> Outcome | None:
    """What the latest execution said, or ``None`` while none has finished.

    A check planned by a run that ended without evaluating it (the run process died, or it
    was terminated) failed to look at the data: ERROR, naming the run.
    """
    if record is None:
        return None
    if record.status == AssetCheckExecutionRecordStatus.PLANNED:
        run = instance.get_run_by_id(record.run_id)
        if run is None or not run.is_finished:
            return None
        reason = f"check run {record.run_id} ended {run.status.value} without a result"
        return Outcome(False, "ERROR", reason, record.run_id)
    event = record.event.dagster_event if record.event else None
    data: Any = event.event_specific_data if event is not None else None
    if record.status == AssetCheckExecutionRecordStatus.SUCCEEDED:
        return Outcome(True, "", getattr(data, "description", None) or "", record.run_id)
    severity = getattr(data, "severity", None)
    return Outcome(
        passed=False,
        severity=severity.value if severity is not None else "ERROR",
        description=getattr(data, "description", None) or "the check did not pass",
        run_id=record.run_id,
    )


def _checks_link(task_id: str) -> str | None:
    return ui_link(f"assets/{ASSET_PREFIX}/{task_id}?view=checks")


def build_check_alert_sensor(built: OutcomeChecks) -> dg.SensorDefinition:
    """One alert when a check stops passing, one ``recovered`` when it passes again."""
    checks = built.checks

    @dg.sensor(
        name=ALERT_SENSOR,
        minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        required_resource_keys={"django"},  # built only if an email is sent (lazy Django)
        description="Alerts once (Dagster log, plus email/webhook when configured) when an "
        "outcome check stops passing, and once more when it passes again.",
    )
    def _alerts(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        state = AlertState.load(context.cursor)
        storage = context.instance.event_log_storage
        latest = storage.get_latest_asset_check_execution_by_key(list(checks))
        channels = build_channels(prepare_django=lambda: context.resources.django.ensure_django())
        raised = cleared = 0
        known = {key.to_user_string() for key in checks}
        for gone in set(state.alerted) - known:  # a check removed from the registry
            del state.alerted[gone]
        for key, (task, check) in checks.items():
            outcome = latest_outcome(latest.get(key), context.instance)
            name = key.to_user_string()
            if outcome is None:
                continue
            if not outcome.passed and name not in state.alerted:
                deliver(_failed_alert(task, check, outcome), channels, context.log)
                state.alerted[name] = {
                    "severity": outcome.severity,
                    "since": _utc_now().isoformat(),
                }
                raised += 1
            elif outcome.passed and name in state.alerted:
                since = state.alerted.pop(name)["since"]
                deliver(_recovered_alert(task, check, outcome, since), channels, context.log)
                cleared += 1
        context.update_cursor(state.dump())
        return dg.SkipReason(
            f"checks {len(checks)}, failing {len(state.alerted)}, raised {raised}, "
            f"cleared {cleared}"
        )

    return _alerts


def _failed_alert(task: MaintenanceTask, check: OutcomeCheck, outcome: Outcome) -> Alert:
    return Alert(
        kind=CHECK_FAILED,
        task=task.id,
        status=outcome.severity,
        summary=f"{task.id} outcome check {check.name} is {outcome.severity}: "
        f"{outcome.description}",
        run_id=outcome.run_id,
        error=outcome.description,
        ui_url=_checks_link(task.id),
    )


def _recovered_alert(
    task: MaintenanceTask, check: OutcomeCheck, outcome: Outcome, since: str
) -> Alert:
    return Alert(
        kind=RECOVERED,
        task=task.id,
        status="RECOVERED",
        summary=f"{task.id} outcome check {check.name} passes again (failing since {since})",
        run_id=outcome.run_id,
        error=None,
        ui_url=_checks_link(task.id),
    )
