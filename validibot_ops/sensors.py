"""Sensors generated from the registry: freshness alerts and run-failure alerts.

Both sensors run by default and deliver through :mod:`validibot_ops.alerts` (the Dagster log
always; email and webhook when configured). See docs/operations.md, "Monitoring and alerts".

- ``validibot_freshness_alerts`` (every 60 s, :mod:`validibot_ops.freshness`): lateness is
  judged by Dagster itself: each scheduled task's asset carries a freshness policy (grace x
  its cron interval) that Dagster's freshness daemon evaluates; this sensor only turns the
  daemon's ``FAIL`` into one ``late`` alert and the next non-``FAIL`` into one ``recovered``
  alert, and says nothing for a task whose schedule is stopped. (It replaces a hand-written
  dead man's switch that sampled run history itself.)
- ``validibot_run_failure_alerts`` (every 15 s): one ``run_failed`` alert per failed run of a
  maintenance job, with the run id and the step errors.
- ``validibot_override_expiry`` and ``validibot_maintenance``, built here from their own
  modules (``override_expiry.py``, ``maintenance_sensor.py``): an expired incident override,
  and maintenance mode.
- ``validibot_failure_policy`` (every 30 s): pause after N failures, privacy escalation
  (:mod:`validibot_ops.policies`).

Lag (dagster-io issues; mitodl/ol-infrastructure PR #5603): a run-status sensor handles at most
``DAGSTER_RUN_STATUS_SENSOR_PROCESS_LIMIT`` (default 5) matching runs per tick, and stops a
tick early when its function returns something. This one returns ``None`` and ticks every
15 s, i.e. up to 20 failures a minute; raise the env var if a burst can exceed that.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg

from validibot.tasks.registry import MaintenanceTask
from validibot_ops.alerts import RUN_FAILED, Alert, build_channels, deliver, ui_link
from validibot_ops.freshness import build_freshness_alert_sensor, effective_tasks
from validibot_ops.maintenance_sensor import build_maintenance_sensor
from validibot_ops.override_expiry import build_override_expiry_sensor
from validibot_ops.policies import build_failure_policy_sensor
from validibot_ops.resources import DjangoResource
from validibot_ops.tags import TASK_TAG

RUN_FAILURE_SENSOR_NAME = "validibot_run_failure_alerts"
RUN_FAILURE_INTERVAL_SECONDS = 15


def build_sensors(tasks: Sequence[MaintenanceTask]) -> list[dg.SensorDefinition]:
    """The freshness alert sensor and the run-failure sensor for ``tasks``.

    Args:
        tasks: every registry task (the freshness sensor applies the incident overrides file
            and keeps the tasks whose schedule runs on Dagster).
    """
    return [
        build_freshness_alert_sensor(tasks),
        build_run_failure_sensor(tasks),
        build_override_expiry_sensor(tasks),
        build_maintenance_sensor(),
        build_failure_policy_sensor(effective_tasks(tasks)),  # pause after N, privacy
    ]


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
