"""The sync plan's rules (pure, no services) and the Cloud Scheduler output (no network)."""

from __future__ import annotations

import base64
import io
import json

import pytest
from django.core.management import CommandError, call_command

from validibot.tasks.overrides import ScheduleOverride
from validibot.tasks.registry import (
    BACKEND_DAGSTER,
    BACKEND_GCP,
    MaintenanceTask,
    get_tasks_for_backend,
    register,
)
from validibot.tasks.sync_plan import ObservedSchedule, apply_plan, plan_schedules

ON = MaintenanceTask(id="task_on", name="On", command="noop_task", cron="0 * * * *")
OFF = MaintenanceTask(
    id="task_off", name="Off", command="noop_task", cron="0 * * * *", enabled=False
)


def seen(name: str, status: str, **kw) -> ObservedSchedule:
    return ObservedSchedule(
        name, status, kw.pop("default", status), kw.pop("cron", "0 * * * *"), **kw
    )


def test_matching_states_are_in_sync():
    plan = plan_schedules(
        [ON, OFF],
        {
            "task_on_schedule": seen("task_on_schedule", "RUNNING"),
            "task_off_schedule": seen("task_off_schedule", "STOPPED"),
        },
    )
    assert not plan.drifted
    assert plan.in_sync == ("task_on_schedule", "task_off_schedule")


def test_toggles_become_starts_and_stops():
    plan = plan_schedules(
        [ON, OFF],
        {
            "task_on_schedule": seen("task_on_schedule", "STOPPED", default="RUNNING"),
            "task_off_schedule": seen("task_off_schedule", "RUNNING", default="STOPPED"),
        },
    )
    assert [(c.schedule_name, c.action) for c in plan.changes] == [
        ("task_on_schedule", "start"),
        ("task_off_schedule", "stop"),
    ]
    calls: list[tuple[str, str]] = []
    done = apply_plan(
        plan, lambda n: calls.append(("start", n)), lambda n: calls.append(("stop", n))
    )
    assert calls == [("start", "task_on_schedule"), ("stop", "task_off_schedule")]
    assert done[0].startswith("started task_on_schedule")


def test_an_override_is_drift_and_its_pause_is_kept():
    override = ScheduleOverride("task_on", enabled=False, reason="incident 7")
    plan = plan_schedules(
        [ON], {"task_on_schedule": seen("task_on_schedule", "STOPPED")}, {"task_on": override}
    )
    assert plan.drifted and not plan.changes
    assert "incident override active (enabled=False (incident 7))" in plan.render()


def test_an_override_seen_only_in_the_code_location_still_counts():
    plan = plan_schedules(
        [ON],
        {
            "task_on_schedule": seen(
                "task_on_schedule", "STOPPED", default="STOPPED", override="enabled=False"
            )
        },
    )
    assert not plan.changes  # the code location's pause is kept
    assert [d.schedule_name for d in plan.drift] == ["task_on_schedule"]


def test_cron_and_missing_schedules_need_a_reload():
    plan = plan_schedules(
        [ON, OFF], {"task_on_schedule": seen("task_on_schedule", "RUNNING", cron="5 * * * *")}
    )
    text = plan.render()
    assert "! task_on_schedule: cron '5 * * * *' in Dagster, expected '0 * * * *'" in text
    assert "! task_off_schedule: missing from the Dagster code location" in text


def test_unknown_schedules_are_listed_and_left_alone():
    plan = plan_schedules([], {"other_schedule": seen("other_schedule", "RUNNING")})
    assert not plan.drifted
    assert "? other_schedule: not in the registry (left alone)" in plan.render()


# -- --backend=gcp -----------------------------------------------------------------------
def gcp_jobs(*args: str) -> list[dict]:
    out = io.StringIO()
    call_command("sync_schedules", "--backend=gcp", *args, stdout=out)
    return json.loads(out.getvalue())


def test_gcp_jobs_cover_exactly_the_gcp_tasks():
    register(
        MaintenanceTask(
            id="gcp_only",
            name="GCP only",
            command="noop_task",
            cron="15 1 * * *",
            timezone="Europe/Berlin",
            backends=frozenset({BACKEND_GCP}),
            enabled=False,
        )
    )
    jobs = gcp_jobs("--base-url", "https://validibot.example.com/")

    tasks = {t.id: t for t in get_tasks_for_backend(BACKEND_GCP)}
    assert len(jobs) == len(tasks)
    assert "cleanup_orphaned_containers" not in tasks  # Docker Compose only
    by_uri = {job["httpTarget"]["uri"]: job for job in jobs}
    for task in tasks.values():
        job = by_uri[f"https://validibot.example.com/api/v1/scheduled/{task.id}/"]
        assert job["schedule"] == task.cron
        assert job["timeZone"] == task.timezone
        assert job["httpTarget"]["httpMethod"] == "POST"
        assert job["httpTarget"]["headers"]["Authorization"] == "Bearer ${VALIDIBOT_TRIGGER_TOKEN}"
        assert base64.b64decode(job["httpTarget"]["body"]) == b"{}"
    gcp_only = by_uri["https://validibot.example.com/api/v1/scheduled/gcp_only/"]
    assert gcp_only["timeZone"] == "Europe/Berlin"
    assert gcp_only["state"] == "PAUSED"
    assert "gcp_only" not in {t.id for t in get_tasks_for_backend(BACKEND_DAGSTER)}


def test_gcp_base_url_comes_from_settings(settings):
    settings.VALIDIBOT_TRIGGER_BASE_URL = "https://api.example.org"
    jobs = gcp_jobs()
    assert all(j["httpTarget"]["uri"].startswith("https://api.example.org/api/v1/") for j in jobs)


def test_gcp_without_a_base_url_is_a_command_error(settings):
    settings.VALIDIBOT_TRIGGER_BASE_URL = ""
    with pytest.raises(CommandError, match="--base-url"):
        gcp_jobs()
