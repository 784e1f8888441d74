"""Schedules: tick times (DST included), one run per tick, skip while busy, overrides."""

from __future__ import annotations

import itertools
import json
from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from dagster._utils.schedules import cron_string_iterator  # Dagster's own tick iterator

from validibot.tasks.overrides import OVERRIDES_ENV
from validibot.tasks.registry import (
    MaintenanceTask,
    get_task,
    register,
)
from validibot_ops.definitions import build_definitions
from validibot_ops.tags import OVERRIDE_TAG, TASK_TAG, TRIGGER_TAG

NEW_YORK = "America/New_York"


def _origin(job_name: str):
    from dagster._core.remote_origin import (
        InProcessCodeLocationOrigin,
        RemoteJobOrigin,
        RemoteRepositoryOrigin,
    )
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    location = InProcessCodeLocationOrigin(
        loadable_target_origin=LoadableTargetOrigin(module_name="validibot_ops.definitions")
    )
    return RemoteJobOrigin(
        repository_origin=RemoteRepositoryOrigin(location, "__repository__"), job_name=job_name
    )


def _evaluate(schedule: dg.ScheduleDefinition, instance, when: datetime):
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when)
    return schedule.evaluate_tick(context)


def test_a_tick_requests_one_run_keyed_by_task_and_tick_time():
    defs = build_definitions()
    schedule = defs.resolve_schedule_def("purge_expired_submissions_schedule")
    when = datetime(2026, 11, 25, 3, 0, tzinfo=ZoneInfo("UTC"))
    with dg.instance_for_test() as instance:
        data = _evaluate(schedule, instance, when)
    assert data.skip_message is None
    [request] = data.run_requests
    assert request.run_key == f"purge_expired_submissions:{when.isoformat()}"
    assert request.tags[TRIGGER_TAG] == "schedule"


@pytest.mark.parametrize(
    ("cron", "start", "days", "expected_on_change_day"),
    [
        # Spring forward: 02:30 does not exist on 8 March 2026 in New York; it runs once, at 03:00.
        ("30 2 * * *", datetime(2026, 3, 6), 5, "2026-03-08T03:00:00-04:00"),
        # Fall back: 01:30 happens twice on 1 November 2026; it runs once, not twice.
        ("30 1 * * *", datetime(2026, 10, 30), 5, "2026-11-01T01:30:00-05:00"),
    ],
    ids=["spring-forward", "fall-back"],
)
def test_dst_changes_neither_skip_nor_double_a_daily_task(
    cron, start, days, expected_on_change_day
):
    """Celery Beat runs such tasks twice or not at all (celery#1604); here: once a day."""
    register(
        MaintenanceTask(
            id="dst_example", name="DST", command="noop_task", cron=cron, timezone=NEW_YORK
        )
    )
    schedule = build_definitions().resolve_schedule_def("dst_example_schedule")
    assert schedule.execution_timezone == NEW_YORK
    begin = start.replace(tzinfo=ZoneInfo(NEW_YORK)).timestamp()
    ticks = list(
        itertools.islice(cron_string_iterator(begin, schedule.cron_schedule, NEW_YORK), days)
    )
    local_days = [tick.date() for tick in ticks]
    assert len(set(local_days)) == days, f"a day was skipped or doubled: {ticks}"
    assert expected_on_change_day in [tick.isoformat() for tick in ticks]

    # The registry's own preview (used by the status view and sync_schedules) agrees.
    task = get_task("dst_example")
    after = datetime.fromtimestamp(begin - 1, ZoneInfo(NEW_YORK))
    assert [t.date() for t in task.next_fire_times(after, days)] == local_days

    with dg.instance_for_test() as instance:
        keys = {_evaluate(schedule, instance, tick).run_requests[0].run_key for tick in ticks}
    assert len(keys) == days


@pytest.mark.parametrize(
    ("status", "skips"),
    [
        (dg.DagsterRunStatus.QUEUED, True),
        (dg.DagsterRunStatus.STARTED, True),
        (dg.DagsterRunStatus.SUCCESS, False),
        (dg.DagsterRunStatus.FAILURE, False),
    ],
)
def test_a_tick_is_skipped_while_a_run_of_the_task_is_queued_or_running(status, skips):
    defs = build_definitions()
    job = defs.resolve_job_def("cleanup_stuck_runs")
    schedule = defs.resolve_schedule_def("cleanup_stuck_runs_schedule")
    with dg.instance_for_test() as instance:
        run = instance.add_run(
            dg.DagsterRun(
                job_name=job.name,
                tags={TASK_TAG: "cleanup_stuck_runs"},
                status=status,
                remote_job_origin=_origin(job.name),  # queued runs must say where they load from
            )
        )
        # A busy run of *another* task never blocks this one.
        instance.add_run(
            dg.DagsterRun(
                job_name="clear_sessions",
                tags={TASK_TAG: "clear_sessions"},
                status=dg.DagsterRunStatus.STARTED,
            )
        )
        data = _evaluate(schedule, instance, datetime(2026, 11, 25, 3, tzinfo=ZoneInfo("UTC")))
    if skips:
        assert not data.run_requests
        assert run.run_id in data.skip_message
        assert status.value in data.skip_message
    else:
        assert len(data.run_requests) == 1


def test_an_override_file_retimes_and_pauses_schedules_and_says_so(tmp_path, monkeypatch):
    path = tmp_path / "overrides.json"
    path.write_text(
        json.dumps(
            {
                "purge_expired_submissions": {
                    "cron": "45 5 * * *",
                    "reason": "INC-42",
                    "author": "alice",
                },
                "clear_sessions": {"enabled": False, "reason": "INC-43", "author": "bob"},
            }
        )
    )
    monkeypatch.setenv(OVERRIDES_ENV, str(path))
    defs = build_definitions()
    purge = defs.resolve_schedule_def("purge_expired_submissions_schedule")
    assert purge.cron_schedule == "45 5 * * *"
    assert "OVERRIDDEN" in purge.description and "INC-42" in purge.description
    assert OVERRIDE_TAG in purge.tags
    sessions = defs.resolve_schedule_def("clear_sessions_schedule")
    assert sessions.default_status == dg.DefaultScheduleStatus.STOPPED
    untouched = defs.resolve_schedule_def("cleanup_stuck_runs_schedule")
    assert OVERRIDE_TAG not in untouched.tags
    assert untouched.cron_schedule == get_task("cleanup_stuck_runs").cron


def test_an_hourly_task_fires_at_both_repeated_hours_like_dagster():
    """Fall back: 01:00 EDT and 01:00 EST are two instants; Dagster runs an hourly cron at both."""
    register(
        MaintenanceTask(
            id="hourly_dst", name="Hourly", command="noop_task", cron="0 * * * *", timezone=NEW_YORK
        )
    )
    task = get_task("hourly_dst")
    begin = datetime(2026, 11, 1, 0, 30, tzinfo=ZoneInfo(NEW_YORK))
    ours = [t.timestamp() for t in task.next_fire_times(begin, 4)]
    dagster = [
        t.timestamp()
        for t in itertools.islice(cron_string_iterator(begin.timestamp(), task.cron, NEW_YORK), 4)
    ]
    assert ours == dagster
    assert len({t.replace(tzinfo=None) for t in task.next_fire_times(begin, 4)}) == 3
