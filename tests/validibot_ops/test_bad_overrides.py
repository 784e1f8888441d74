"""Issue 28 points 2 and 3: a bad overrides file fails safe, and ``enabled: false`` means it.

A bad entry holds only its own task at the registry's schedule (documented in
docs/operations.md, "Incident overrides"); every other schedule and every sensor loads; the
override sensor posts one alert to a real webhook naming the file, the entry and the cause.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import dagster as dg
import pytest

from validibot.tasks.overrides import OVERRIDES_ENV
from validibot.tasks.registry import BACKEND_DAGSTER, get_task, get_tasks, get_tasks_for_backend
from validibot_ops import override_expiry
from validibot_ops.checks import ALL_CHECKS_SCHEDULE
from validibot_ops.definitions import build_definitions
from validibot_ops.override_expiry import build_override_expiry_sensor
from validibot_ops.resources import DjangoResource
from validibot_ops.tags import OVERRIDE_PROBLEM_TAG, OVERRIDE_TAG

GOOD = {"cron": "45 5 * * *", "reason": "INC-42", "author": "alice"}
SENSORS = {
    "validibot_freshness_alerts",
    "validibot_run_failure_alerts",
    "validibot_override_expiry",
    "validibot_maintenance",
    "validibot_failure_policy",
}


def _write(tmp_path, monkeypatch, text: str, suffix: str = ".json"):
    path = tmp_path / f"overrides{suffix}"
    path.write_text(text)
    monkeypatch.setenv(OVERRIDES_ENV, str(path))
    return path


def _assert_everything_loaded(defs: dg.Definitions) -> None:
    scheduled = get_tasks_for_backend(BACKEND_DAGSTER)
    expected = [ALL_CHECKS_SCHEDULE, *(t.schedule_name for t in scheduled)]
    assert sorted(s.name for s in defs.schedules) == sorted(expected)
    assert {s.name for s in defs.sensors} >= SENSORS
    for name in SENSORS:
        assert defs.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING


def _assert_held(defs: dg.Definitions, task_id: str, *words: str) -> None:
    """The task's schedule is the registry's, and says why the entry was refused."""
    task = get_task(task_id)
    assert task is not None
    schedule = defs.resolve_schedule_def(task.schedule_name)
    assert schedule.cron_schedule == task.cron
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert OVERRIDE_TAG not in schedule.tags
    for word in words:
        assert word in schedule.tags[OVERRIDE_PROBLEM_TAG]
        assert word in (schedule.description or "")


@pytest.mark.parametrize(
    ("bad_entry", "cause"),
    [
        ({"cron": "61 * * * *", "reason": "r", "author": "a"}, "not a valid five-field cron"),
        ({"cron": "0 0 31 2 *", "reason": "r", "author": "a"}, "Dagster refuses"),
        ({"enabled": "no", "reason": "r", "author": "a"}, "enabled must be true or false"),
        ({"enabled": False, "reason": "r", "author": "a", "when": "now"}, "unknown field"),
        ({"enabled": False, "reason": "r", "author": "a", "expires_at": "2099-13-01"}, "ISO"),
        ({"enabled": False, "reason": "r"}, "author is required"),
        (["enabled"], "expected a mapping"),
    ],
)
def test_a_bad_entry_holds_only_its_task_and_everything_else_loads(
    tmp_path, monkeypatch, bad_entry, cause
):
    path = _write(
        tmp_path,
        monkeypatch,
        json.dumps({"clear_sessions": bad_entry, "purge_expired_submissions": GOOD}),
    )
    defs = build_definitions()
    _assert_everything_loaded(defs)
    _assert_held(defs, "clear_sessions", str(path), "'clear_sessions'", cause)
    purge = defs.resolve_schedule_def("purge_expired_submissions_schedule")
    assert purge.cron_schedule == "45 5 * * *" and OVERRIDE_PROBLEM_TAG not in purge.tags


def test_an_unknown_task_id_is_refused_with_the_closest_id_and_nothing_else_changes(
    tmp_path, monkeypatch
):
    _write(tmp_path, monkeypatch, json.dumps({"clear_sesions": GOOD}))
    defs = build_definitions()
    _assert_everything_loaded(defs)
    # No task to hold: every schedule is the registry's, none carries the refusal.
    assert all(OVERRIDE_PROBLEM_TAG not in s.tags for s in defs.schedules)
    sensor = build_override_expiry_sensor(get_tasks())
    with dg.instance_for_test() as instance:
        reason = _tick(sensor, instance)[0]
    assert "'clear_sesions': no such task in the registry (did you mean 'clear_sessions'?)" in (
        reason
    )


@pytest.mark.parametrize(
    ("content", "suffix", "cause"),
    [
        ("{not json", ".json", "not valid JSON"),
        ("a: [b", ".yaml", "not valid YAML"),
        ("[1, 2]", ".json", "expected a mapping of task id"),
    ],
)
def test_an_unparseable_file_leaves_every_task_at_the_registry(
    tmp_path, monkeypatch, content, suffix, cause
):
    path = _write(tmp_path, monkeypatch, content, suffix)
    defs = build_definitions()
    _assert_everything_loaded(defs)
    for task in get_tasks_for_backend(BACKEND_DAGSTER):
        if task.enabled:
            _assert_held(defs, task.id, str(path), cause)


def test_a_missing_file_is_named_and_nothing_else_changes(tmp_path, monkeypatch):
    monkeypatch.setenv(OVERRIDES_ENV, str(tmp_path / "absent.yaml"))
    defs = build_definitions()
    _assert_everything_loaded(defs)
    _assert_held(defs, "clear_sessions", "absent.yaml", "cannot read")


def _tick(sensor: dg.SensorDefinition, instance, cursor: str | None = None):
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"django": DjangoResource(settings_module="config.settings.test")},
    )
    with context:
        data = sensor.evaluate_tick(context)
    return data.skip_message or "", data.cursor


@pytest.mark.django_db(transaction=True)
def test_the_refusal_reaches_the_webhook_once_naming_file_entry_and_cause(
    tmp_path, monkeypatch, alert_env, webhook
):
    path = _write(
        tmp_path,
        monkeypatch,
        "clear_sessions:\n  cron: '0 0 31 2 *'\n  reason: INC-9\n  author: alice\n",
        ".yaml",
    )
    sensor = build_override_expiry_sensor(get_tasks())
    with dg.instance_for_test() as instance:
        reason, cursor = _tick(sensor, instance)
        [hook] = webhook.received
        assert hook["kind"] == override_expiry.OVERRIDE_REFUSED
        assert hook["task"] == "clear_sessions"
        assert str(path) in hook["summary"] and "'0 0 31 2 *'" in hook["summary"]
        assert "clear_sessions keeps its registry schedule" in hook["summary"]
        assert "refused" in reason
        _tick(sensor, instance, cursor)
        assert len(webhook.received) == 1, "one alert per refused entry, not one per tick"


def _evaluate(schedule: dg.ScheduleDefinition, instance):
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=datetime.now(UTC).replace(microsecond=0)
    )
    return schedule.evaluate_tick(context)


def test_enabled_false_pauses_even_a_schedule_stored_running_and_removal_restores_it(
    tmp_path, monkeypatch
):
    """Point 3: a stored RUNNING state (a UI toggle, ``maintenance off``) makes the daemon
    evaluate the schedule whatever its default; the override's tick guard still runs nothing,
    and the stored state applies again once the entry is removed."""
    path = _write(
        tmp_path,
        monkeypatch,
        json.dumps({"clear_sessions": {"enabled": False, "reason": "INC-43", "author": "bob"}}),
    )
    with dg.instance_for_test() as instance:
        paused = build_definitions().resolve_schedule_def("clear_sessions_schedule")
        assert paused.default_status == dg.DefaultScheduleStatus.STOPPED
        data = _evaluate(paused, instance)
        assert not data.run_requests
        assert "paused by the incident overrides file" in (data.skip_message or "")
        assert "INC-43" in (data.skip_message or "")

        path.write_text("{}")
        restored = build_definitions().resolve_schedule_def("clear_sessions_schedule")
        assert len(_evaluate(restored, instance).run_requests) == 1
