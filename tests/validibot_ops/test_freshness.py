"""Freshness through Dagster, against a real instance: real runs, Dagster's own freshness daemon
evaluated at controlled times, the alert sensor ticked like the daemon ticks it.

Time is controlled at one seam, Dagster's clock (``dagster._core.test_utils.freeze_time``): the
freshness daemon and the sensor read it; the runs themselves happen at the real time.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import InProcessTestWorkspaceLoadTarget, freeze_time
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._daemon.freshness import FreshnessDaemon

from tests.support.testapp.task_definitions import HOURLY_NOOP, TEST_TASKS
from tests.validibot_ops.test_sensors import QUIET, Ticker
from validibot.tasks.health import GRACE_ENV, task_expected_interval
from validibot.tasks.registry import BUILTIN_TASKS, get_tasks, register
from validibot_ops import freshness
from validibot_ops.definitions import build_definitions
from validibot_ops.ops import task_asset_key

# Dagster's own freshness daemon runs in-process per test: not in the fast loop.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

NOOP = next(t for t in TEST_TASKS if t.id == "test_noop")  # every minute: window 2 min
HOURLY = HOURLY_NOOP
ROOT = Path(__file__).resolve().parents[2]


class Stack:
    """A real instance, the code location loaded in-process, Dagster's freshness daemon."""

    def __init__(self, instance: dg.DagsterInstance, workspace: WorkspaceProcessContext):
        self.instance, self.workspace = instance, workspace
        self.defs = build_definitions()
        self.daemon = FreshnessDaemon()
        self.ticker = Ticker(
            self.defs.resolve_sensor_def(freshness.FRESHNESS_ALERT_SENSOR_NAME), instance
        )

    def run(self, task_id: str, dry_run: bool = False) -> dg.ExecuteInProcessResult:
        config = {**QUIET, "ops": {task_id: {"config": {"dry_run": dry_run}}}}
        job = self.defs.resolve_job_def(task_id)
        return job.execute_in_process(instance=self.instance, run_config=config)

    def judge(self, at: datetime) -> dict[str, str]:
        """One freshness daemon iteration at ``at``; each task's stored verdict."""
        with freeze_time(at):
            list(self.daemon.run_iteration(self.workspace))
        keys = [task_asset_key(t) for t in get_tasks()]
        records = self.instance.get_freshness_state_records(keys)
        return {key.path[-1]: record.freshness_state.value for key, record in records.items()}

    def tick(self, at: datetime) -> str:
        with freeze_time(at):
            return self.ticker.tick().skip_message or ""

    def stop_schedule(self, name: str) -> None:
        request = self.workspace.create_request_context()
        [location] = request.code_locations
        [repository] = location.get_repositories().values()
        schedule = repository.get_schedule(name)
        self.instance.stop_schedule(schedule.get_remote_origin_id(), schedule.selector_id, schedule)


@pytest.fixture
def stack() -> Iterator[Stack]:
    for task in (*TEST_TASKS, HOURLY):
        register(task)
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(
            module_name="tests.support.live_definitions",
            attribute="defs",
            working_directory=str(ROOT),
        )
    )
    with contextlib.ExitStack() as stack:
        instance = stack.enter_context(dg.instance_for_test())
        target = InProcessTestWorkspaceLoadTarget(origin)
        workspace = stack.enter_context(WorkspaceProcessContext(instance, target))
        yield Stack(instance, workspace)


def _now() -> datetime:
    return datetime.now(UTC)


# -- the policies -----------------------------------------------------------------------------


@pytest.mark.parametrize("task", [t for t in BUILTIN_TASKS if t.enabled], ids=lambda t: t.id)
def test_every_scheduled_task_gets_a_window_of_grace_times_its_interval(task):
    policy = freshness.build_freshness_policy(task, grace_intervals=2)
    assert policy is not None
    assert policy.fail_window.to_timedelta() == 2 * task_expected_interval(task)


def test_the_grace_setting_scales_every_window(monkeypatch):
    monkeypatch.setenv(GRACE_ENV, "3")
    policy = freshness.build_freshness_policy(HOURLY)
    assert policy is not None and policy.fail_window.to_timedelta() == timedelta(hours=3)


def test_disabled_and_paused_tasks_get_no_policy_and_a_re_timed_cron_is_used(monkeypatch, tmp_path):
    path = tmp_path / "overrides.json"
    overrides = {
        "test_hourly_noop": {"enabled": False, "reason": "incident", "author": "alice"},
        "test_noop": {"cron": "*/30 * * * *", "reason": "incident", "author": "alice"},
    }
    path.write_text(json.dumps(overrides))
    monkeypatch.setenv("VALIDIBOT_SCHEDULE_OVERRIDES", str(path))
    for task in (*TEST_TASKS, HOURLY):
        register(task)
    policies = freshness.freshness_policies(get_tasks())
    assert "test_hourly_noop" not in policies  # paused by the overrides file
    assert "test_always_fail" not in policies  # disabled in the registry
    assert policies["test_noop"].fail_window.to_timedelta() == timedelta(hours=1)
    assets = {a.key: a for a in build_definitions().assets}
    assert assets[task_asset_key(NOOP)].freshness_policy == policies["test_noop"]
    assert assets[task_asset_key(HOURLY)].freshness_policy is None


def test_the_alert_sensor_replaces_the_dead_mans_switch():
    names = {s.name for s in build_definitions().sensors}
    assert freshness.FRESHNESS_ALERT_SENSOR_NAME in names
    assert "validibot_dead_mans_switch" not in names


# -- the daemon and the sensor ----------------------------------------------------------------


def test_late_is_detected_within_the_window_alerted_once_then_recovered(stack, alert_env, webhook):
    first = stack.run("test_noop")
    start = _now()
    assert stack.judge(start)["test_noop"] == "PASS"
    assert stack.tick(start).startswith("watched ")
    assert webhook.received == []

    # The window is 2 minutes: fresh just before it closes, late just after.
    assert stack.judge(start + timedelta(minutes=1, seconds=50))["test_noop"] == "PASS"
    late_at = start + timedelta(minutes=2, seconds=5)
    assert stack.judge(late_at)["test_noop"] == "FAIL"
    for minute in range(4):  # the daemon and the sensor keep ticking: one alert, not four
        stack.judge(late_at + timedelta(minutes=minute))
        stack.tick(late_at + timedelta(minutes=minute))
    [late] = webhook.received
    assert (late["kind"], late["status"], late["task"]) == ("late", "LATE", "test_noop")
    assert late["run_id"] is None
    assert "0:02:00" in late["summary"]
    assert late["ui_url"] == "https://dagster.example.com/assets/validibot_maintenance/test_noop"
    assert len(alert_env) == 1 and "test_noop" in alert_env[0].subject

    second = stack.run("test_noop")
    assert second.run_id != first.run_id
    assert stack.judge(_now())["test_noop"] == "PASS"
    assert "cleared 1" in stack.tick(_now())
    stack.tick(_now() + timedelta(seconds=61))
    assert [h["status"] for h in webhook.received] == ["LATE", "RECOVERED"]
    recovered = webhook.received[1]
    assert recovered["run_id"] == second.run_id
    assert recovered["ui_url"] == f"https://dagster.example.com/runs/{second.run_id}"
    assert len(alert_env) == 2


def test_a_dry_run_does_not_count_as_fresh(stack, webhook, monkeypatch):
    monkeypatch.setenv("VALIDIBOT_ALERT_WEBHOOK_URL", webhook.url)
    assert stack.run("test_noop", dry_run=True).success
    assert stack.judge(_now())["test_noop"] == "UNKNOWN"  # a dry run alone: never run

    assert stack.run("test_noop").success
    real_at = _now()
    assert stack.run("test_noop", dry_run=True).success
    # Past the real run's window, a dry run moments ago changes nothing.
    assert stack.judge(real_at + timedelta(minutes=2, seconds=5))["test_noop"] == "FAIL"
    stack.tick(real_at + timedelta(minutes=2, seconds=5))
    assert [h["status"] for h in webhook.received] == ["LATE"]


def test_a_stopped_schedule_is_not_reported_late(stack, webhook, monkeypatch):
    monkeypatch.setenv("VALIDIBOT_ALERT_WEBHOOK_URL", webhook.url)
    assert stack.run("test_noop").success
    stack.stop_schedule(NOOP.schedule_name)
    late_at = _now() + timedelta(minutes=5)
    # Dagster's policy knows nothing of schedules: it says FAIL; the sensor stays silent.
    assert stack.judge(late_at)["test_noop"] == "FAIL"
    message = stack.tick(late_at)
    assert "late 0" in message and "stopped 1" in message
    assert webhook.received == []


def test_a_schedule_stopped_while_late_clears_silently(stack, webhook, monkeypatch):
    monkeypatch.setenv("VALIDIBOT_ALERT_WEBHOOK_URL", webhook.url)
    assert stack.run("test_noop").success
    late_at = _now() + timedelta(minutes=5)
    stack.judge(late_at)
    assert "raised 1" in stack.tick(late_at)
    stack.stop_schedule(NOOP.schedule_name)
    assert "late 0" in stack.tick(late_at + timedelta(minutes=1))
    assert [h["status"] for h in webhook.received] == ["LATE"]


def test_a_task_that_never_ran_is_unknown_not_late(stack, webhook, monkeypatch):
    """Dagster does not judge an asset with no materialization (documented gap)."""
    monkeypatch.setenv("VALIDIBOT_ALERT_WEBHOOK_URL", webhook.url)
    verdicts = stack.judge(_now() + timedelta(days=30))
    assert verdicts["test_hourly_noop"] == "UNKNOWN"
    assert verdicts["test_always_fail"] == "NOT_APPLICABLE"  # disabled: no policy
    stack.tick(_now() + timedelta(days=30))
    assert webhook.received == []


def test_an_unreadable_cursor_starts_afresh_and_never_crashes_the_tick(stack):
    stack.ticker.cursor = "not json"
    assert stack.tick(_now()).startswith("watched ")
    assert json.loads(stack.ticker.cursor) == {"alerted": {}}


def test_the_graphql_read_of_the_status_command_and_doctor_sees_the_daemons_verdict(stack):
    """The exact query ``DagsterClient.asset_health`` sends, run against Dagster's real GraphQL
    schema in-process (the HTTP round trip is covered by test_freshness_daemon.py)."""
    from dagster_graphql.test.utils import execute_dagster_graphql

    from validibot.operations import dagster_client

    assert stack.run("test_noop").success
    stack.judge(_now() + timedelta(minutes=5))
    keys = [{"path": ["validibot_maintenance", t]} for t in ("test_noop", "test_hourly_noop")]
    result = execute_dagster_graphql(
        stack.workspace.create_request_context(),
        dagster_client._ASSET_HEALTH_QUERY,
        {"keys": keys},
    )
    assert result.errors is None
    found = [dagster_client._asset_health(raw) for raw in result.data["assetNodes"]]
    health = {h.task_id: h for h in found}
    assert health["test_noop"].freshness == "DEGRADED"
    assert health["test_noop"].fail_window_s == 120
    assert health["test_noop"].last_materialized_at is not None
    assert health["test_hourly_noop"].freshness == "UNKNOWN"  # never materialized
