"""Outcome checks generated from the registry: is the data each task looks after clean?

For every :class:`~validibot.tasks.outcomes.OutcomeCheck` in a task's registry entry:

- an asset check ``<check name>`` on the task's asset (``validibot_maintenance/<id>``). It
  sets Django up through the :class:`DjangoResource` (never at import, so definitions load
  without a database), runs the check's query read-only (``validibot/core/outcomes.py``) and
  reports pass, WARN past ``warn_above`` or ERROR past ``error_above``, with the figures
  (``count``, ``oldest_overdue_hours``) as metadata, so the Checks tab plots them. A query that
  fails reports ERROR with the reason; it never fails the step or the code location.
- a job per task, ``<id>_outcome_checks``, which the sensor ``validibot_outcome_checks_after_runs``
  requests after each finished run of the task (success or failure; one request per run,
  keyed by its run id);
- one job with every check, ``validibot_outcome_checks``, on its own schedule
  (``validibot_outcome_checks_schedule``, hourly), so a task that stopped running is still
  judged;
- the sensor ``validibot_outcome_check_alerts``: one alert through
  :mod:`validibot_ops.alerts` when a check stops passing, one ``recovered`` when it passes
  again (the sensor cursor remembers which checks are alerted, as the freshness alert sensor does).

The check runs carry ``validibot/outcome-checks`` and never ``validibot/task``: they are not
runs of the task, so the task's concurrency limit, its freshness and its run-failure
alerts never see them.
"""

# No ``from __future__ import annotations`` here: Dagster reads the check function's
# annotations (context type, resource type) at decoration time and needs real types.

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
)

from validibot.tasks import vocabulary
from validibot.tasks.outcomes import ERROR, PASS, OutcomeCheck, OutcomeFigure, judge
from validibot.tasks.registry import DEFAULT_QUEUE, MaintenanceTask
from validibot_ops.alerts import RECOVERED, Alert, build_channels, deliver, ui_link
from validibot_ops.ops import task_asset_key
from validibot_ops.resources import DjangoResource
from validibot_ops.tags import ASSET_PREFIX, CELERY_QUEUE_TAG, TASK_TAG

CHECKS_TAG = "validibot/outcome-checks"
"""On every check run: the task whose checks it runs, or ``all``."""
CHECKED_RUN_TAG = "validibot/checked-run"
"""On a check run requested after a task's run: that run's id."""
ALL_CHECKS_JOB = "validibot_outcome_checks"
ALL_CHECKS_SCHEDULE = f"{ALL_CHECKS_JOB}_schedule"
ALL_CHECKS_CRON = "7 * * * *"
"""Hourly, off the hour (the purges run on it)."""
AFTER_RUNS_SENSOR = "validibot_outcome_checks_after_runs"
ALERT_SENSOR = "validibot_outcome_check_alerts"
SENSOR_INTERVAL_SECONDS = 30
CHECK_FAILED = "check_failed"
"""The alert kind of a check that stopped passing (``status`` is ``WARN`` or ``ERROR``)."""
MAX_ERROR_LENGTH = 1000

FINISHED_STATUSES = [dg.DagsterRunStatus(name) for name in sorted(vocabulary.FINISHED_STATUSES)]

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def checks_job_name(task_id: str) -> str:
    """The job that runs the task's checks (requested after each run of the task)."""
    return f"{task_id}_outcome_checks"


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
        try:
            figure = query_figure(django, check, clock())
        except Exception as exc:  # noqa: BLE001  (any failure is the check's ERROR, with reason)
            context.log.error(f"{task.id}.{check.name}: {type(exc).__name__}: {exc}")
            return failed_query_result(exc)
        return check_result(check, figure)

    return _check


# -- jobs, schedule, sensors ------------------------------------------------------------------


@dataclass
class OutcomeChecks:
    """Everything generated for the registry's outcome checks."""

    checks: dict[dg.AssetCheckKey, tuple[MaintenanceTask, OutcomeCheck]] = field(
        default_factory=dict
    )
    definitions: list[dg.AssetChecksDefinition] = field(default_factory=list)
    jobs: dict[str, UnresolvedAssetJobDefinition] = field(default_factory=dict)


def _job_tags(scope: str) -> dict[str, str]:
    return {CHECKS_TAG: scope, CELERY_QUEUE_TAG: DEFAULT_QUEUE}


def build_outcome_checks(
    tasks: Sequence[MaintenanceTask],
    executor: dg.ExecutorDefinition | None = None,
    clock: Clock = _utc_now,
) -> OutcomeChecks:
    """One asset check per declared outcome check, and one job per task that has any."""
    result = OutcomeChecks()
    for task in tasks:
        defs = []
        for check in task.outcome_checks:
            definition = build_outcome_check(task, check, clock)
            result.checks[check_key(task, check)] = (task, check)
            defs.append(definition)
        if defs:
            result.definitions += defs
            result.jobs[task.id] = dg.define_asset_job(
                checks_job_name(task.id),
                selection=dg.AssetSelection.checks(*defs),
                description=f"The outcome checks of {task.id}: is the data it looks after clean?",
                tags=_job_tags(task.id),
                executor_def=executor,
            )
    return result


def build_check_definitions(
    tasks: Sequence[MaintenanceTask],
    executor: dg.ExecutorDefinition | None = None,
    clock: Clock = _utc_now,
) -> dg.Definitions:
    """The checks, their jobs, the hourly schedule and both sensors, to merge into the code
    location's definitions (``validibot_ops/definitions.py``)."""
    built = build_outcome_checks(tasks, executor, clock)
    if not built.definitions:
        return dg.Definitions()
    everything = dg.define_asset_job(
        ALL_CHECKS_JOB,
        selection=dg.AssetSelection.checks(*built.definitions),
        description="Every task's outcome checks (hourly, whether or not the tasks ran).",
        tags=_job_tags("all"),
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
        jobs=[everything, *built.jobs.values()],
        schedules=[schedule],
        sensors=[build_after_runs_sensor(built), build_check_alert_sensor(built)],
    )


def build_after_runs_sensor(built: OutcomeChecks) -> dg.SensorDefinition:
    """Requests ``<id>_outcome_checks`` once for each finished run of a task with checks.

    The cursor is the last finished run's update time; the run key (the task run's id)
    keeps a run seen twice at the cursor's boundary from being checked twice. The first tick
    starts from "now": history is not re-checked.
    """
    jobs = built.jobs

    @dg.sensor(
        name=AFTER_RUNS_SENSOR,
        minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        jobs=list(jobs.values()),
        description="Runs a task's outcome checks after each of its runs ends (success or "
        "failure).",
    )
    def _after_runs(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        since = _cursor_time(context.cursor)
        if since is None:  # first tick (or an unreadable cursor): history is not re-checked
            return dg.SensorResult(
                skip_reason="watching from now", cursor=str(_utc_now().timestamp())
            )
        records = context.instance.get_run_records(
            dg.RunsFilter(statuses=FINISHED_STATUSES, updated_after=since),
            limit=100,
            order_by="update_timestamp",
            ascending=True,
        )
        requests = []
        for record in records:
            run = record.dagster_run
            task_id = run.tags.get(TASK_TAG)
            if task_id in jobs:
                requests.append(
                    dg.RunRequest(
                        run_key=run.run_id,
                        job_name=checks_job_name(task_id),
                        tags={CHECKED_RUN_TAG: run.run_id},
                    )
                )
        cursor = max([since.timestamp(), *(r.update_timestamp.timestamp() for r in records)])
        return dg.SensorResult(run_requests=requests, cursor=str(cursor))

    return _after_runs


def _cursor_time(cursor: str | None) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(cursor), UTC) if cursor else None
    except (ValueError, OverflowError, OSError):
        return None


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
