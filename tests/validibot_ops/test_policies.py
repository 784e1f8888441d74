"""Schedule policies against a real Dagster instance: overlap, catch-up, pause after failures.

Runs are real rows in a real (temporary, SQLite) Dagster instance in the states a slow run
goes through (QUEUED, STARTED); schedules and sensors are evaluated as the daemon evaluates
them (``evaluate_tick``), and the schedule's stored state is the one the daemon writes.
Nothing is mocked.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.remote_origin import (
    InProcessCodeLocationOrigin,
    RemoteInstigatorOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorStatus,
    ScheduleInstigatorData,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from validibot.tasks.policies import FAILURE_POLICY_SENSOR, FailurePolicyState, paused_reasons
from validibot.tasks.registry import MaintenanceTask, register
from validibot.tasks.sync_plan import RUNNING, STOPPED, ObservedSchedule, plan_schedules
from validibot_ops import policies
from validibot_ops.definitions import build_definitions
from validibot_ops.jobs import job_tags
from validibot_ops.resources import DjangoResource
from validibot_ops.tags import EXCLUSIVE_TAG, TASK_TAG

# Real Dagster daemons and schedule evaluations per case: not in the fast loop.
pytestmark = pytest.mark.slow

S, B, A = "slow_skip", "slow_buffer", "slow_allow"
TASKS = [
    MaintenanceTask(id=S, name="Skip", command="noop_task", cron="*/5 * * * *"),
    MaintenanceTask(
        id=B, name="Buffer", command="noop_task", cron="*/5 * * * *", overlap_policy="buffer_one"
    ),
    MaintenanceTask(
        id=A, name="Allow", command="noop_task", cron="*/5 * * * *", overlap_policy="allow"
    ),
    MaintenanceTask(
        id="flaky_pausable",
        name="Pausable",
        command="noop_task",
        cron="0 * * * *",
        pause_after_failures=3,
    ),
    MaintenanceTask(
        id="flaky_private", name="Private", command="noop_task", cron="0 * * * *", privacy=True
    ),
    MaintenanceTask(
        id="stale_digest",
        name="Digest",
        command="noop_task",
        cron="0 */6 * * *",
        catchup_window_seconds=3600,
    ),
]
LOCATION = InProcessCodeLocationOrigin(
    loadable_target_origin=LoadableTargetOrigin(module_name="validibot_ops.definitions")
)
REPOSITORY = RemoteRepositoryOrigin(LOCATION, "__repository__")


@pytest.fixture
def defs() -> dg.Definitions:
    for task in TASKS:
        register(task)
    return build_definitions()


def _add_run(instance, task_id: str, status: dg.DagsterRunStatus, dry_run: bool = False):
    from dagster._core.remote_origin import RemoteJobOrigin

    config = {"ops": {task_id: {"config": {"dry_run": True}}}} if dry_run else {}
    return instance.add_run(
        dg.DagsterRun(
            job_name=task_id,
            tags={TASK_TAG: task_id},
            status=status,
            run_config=config,
            remote_job_origin=RemoteJobOrigin(REPOSITORY, task_id),
        )
    )


def _tick(defs, task_id: str, instance, when: datetime) -> dg.ScheduleExecutionData:
    schedule = defs.resolve_schedule_def(f"{task_id}_schedule")
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when)
    return schedule.evaluate_tick(context)


# -- overlap -----------------------------------------------------------------------------------

QUEUED, STARTED = dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTED


@pytest.mark.parametrize(
    ("task_id", "in_progress", "runs"),
    [
        (S, [], True),
        (S, [STARTED], False),
        (S, [QUEUED], False),
        (B, [], True),
        (B, [STARTED], True),  # one run may wait behind the running one
        (B, [STARTED, QUEUED], False),  # ... but only one
        (A, [STARTED], True),
        (A, [STARTED, QUEUED, QUEUED], True),
    ],
)
def test_a_tick_under_each_overlap_policy_with_a_slow_run_in_progress(
    defs, task_id, in_progress, runs
):
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with dg.instance_for_test() as instance:
        added = [_add_run(instance, task_id, status) for status in in_progress]
        data = _tick(defs, task_id, instance, now)
    assert bool(data.run_requests) is runs, data.skip_message
    if not runs:
        assert any(run.run_id in data.skip_message for run in added)
        policy = "skip" if task_id == S else "buffer_one"
        assert f"overlap_policy={policy}" in data.skip_message


def test_only_allow_jobs_escape_the_run_queue_limit(defs):
    """The instance's tag limit (dagster.yaml) counts validibot/exclusive, one run per value:
    a buffered run waits QUEUED behind the running one; an allow run starts at once."""
    import yaml

    from tests.support.dagster_stack import REPO_ROOT

    assert defs.resolve_job_def(S).tags[EXCLUSIVE_TAG] == S
    assert defs.resolve_job_def(B).tags[EXCLUSIVE_TAG] == B
    assert EXCLUSIVE_TAG not in defs.resolve_job_def(A).tags
    assert EXCLUSIVE_TAG not in job_tags(TASKS[2])
    for name in ("dagster.yaml", "deploy/dagster.yaml"):
        config = yaml.safe_load((REPO_ROOT / name).read_text())
        limits = config["run_coordinator"]["config"]["tag_concurrency_limits"]
        exclusive = [limit for limit in limits if limit["key"] == EXCLUSIVE_TAG]
        assert exclusive == [
            {"key": EXCLUSIVE_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
        ], name
        assert not [limit for limit in limits if limit["key"] == TASK_TAG], name


def test_the_run_queue_holds_a_buffered_run_until_the_running_one_ends(defs):
    """Dagster's own QueuedRunCoordinator dequeue step, on a real instance with our limits:
    the buffered (QUEUED) run is not launched while the first is STARTED, and is once it
    has ended; an allow task's second run is launched beside its first."""
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
        QueuedRunCoordinatorDaemon,
    )

    overrides = {
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {
                "tag_concurrency_limits": [
                    {"key": EXCLUSIVE_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
                ]
            },
        },
        "run_launcher": {"module": "dagster._core.test_utils", "class": "MockedRunLauncher"},
    }
    with dg.instance_for_test(overrides=overrides) as instance:
        first = _add_exclusive(instance, B, STARTED)
        waiting = _add_exclusive(instance, B, QUEUED)
        other_first = _add_exclusive(instance, A, STARTED, exclusive=False)
        other_second = _add_exclusive(instance, A, QUEUED, exclusive=False)
        _dequeue(instance, QueuedRunCoordinatorDaemon)
        assert instance.get_run_by_id(waiting.run_id).status == QUEUED
        assert instance.get_run_by_id(other_second.run_id).status != QUEUED
        instance.report_run_failed(instance.get_run_by_id(first.run_id))
        _dequeue(instance, QueuedRunCoordinatorDaemon)
        assert instance.get_run_by_id(waiting.run_id).status != QUEUED
        assert other_first.run_id


def _add_exclusive(instance, task_id, status, exclusive=True):
    from dagster._core.remote_origin import RemoteJobOrigin

    tags = {TASK_TAG: task_id, **({EXCLUSIVE_TAG: task_id} if exclusive else {})}
    return instance.add_run(
        dg.DagsterRun(
            job_name=task_id,
            tags=tags,
            status=status,
            remote_job_origin=RemoteJobOrigin(REPOSITORY, task_id),
        )
    )


def _dequeue(instance, daemon_class) -> None:
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import ModuleTarget

    target = ModuleTarget(
        module_name="validibot_ops.definitions",
        attribute=None,
        working_directory=None,
        location_name="validibot_ops",
    )
    with WorkspaceProcessContext(instance, target) as context:
        daemon = daemon_class(interval_seconds=1)
        list(daemon.run_iteration(context))


# -- catch-up ----------------------------------------------------------------------------------


def test_a_tick_older_than_its_catchup_window_is_skipped_naming_the_window(defs):
    """The daemon was down: the latest missed tick is evaluated hours late."""
    now = datetime.now(UTC)
    stale = (now - timedelta(hours=5)).replace(minute=0, second=0, microsecond=0)
    with dg.instance_for_test() as instance:
        data = _tick(defs, "stale_digest", instance, stale)
        fresh = _tick(defs, "stale_digest", instance, now - timedelta(seconds=30))
        purge = _tick(defs, S, instance, stale)  # no window: catches up with one run
    assert not data.run_requests
    assert "catchup_window_seconds=3600" in data.skip_message
    assert "(1h)" in data.skip_message and stale.isoformat() in data.skip_message
    assert len(fresh.run_requests) == 1
    assert len(purge.run_requests) == 1


def test_builtin_emails_do_not_catch_up_but_purges_do():
    defs = build_definitions()
    stale = datetime.now(UTC) - timedelta(days=1)
    with dg.instance_for_test() as instance:
        emails = _tick(defs, "send_periodic_emails", instance, stale)
        purge = _tick(defs, "purge_expired_submissions", instance, stale)
    assert not emails.run_requests and "catch-up window" in emails.skip_message
    assert len(purge.run_requests) == 1


# -- pause after failures ----------------------------------------------------------------------


class PolicyTicker:
    """Evaluates the failure-policy sensor tick after tick, carrying its cursor as the daemon
    does; records the alerts it delivered."""

    def __init__(self, defs, instance, monkeypatch) -> None:
        self.sensor = defs.resolve_sensor_def(FAILURE_POLICY_SENSOR)
        self.instance, self.cursor, self.alerts = instance, None, []
        real = policies.deliver

        def recording(alert, channels, log=None):
            self.alerts.append(alert)
            return real(alert, channels, log)

        monkeypatch.setattr(policies, "deliver", recording)

    def tick(self) -> dg.SensorExecutionData:
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources={"django": DjangoResource(settings_module="config.settings.test")},
        )
        with context:
            data = self.sensor.evaluate_tick(context)
        self.cursor = data.cursor
        return data


def _schedule_state(instance, task_id: str, status=InstigatorStatus.DECLARED_IN_CODE):
    """The state the daemon stores for a running-by-default schedule on its first tick."""
    state = InstigatorState(
        RemoteInstigatorOrigin(REPOSITORY, f"{task_id}_schedule"),
        InstigatorType.SCHEDULE,
        status,
        ScheduleInstigatorData("0 * * * *", datetime.now(UTC).timestamp()),
    )
    instance.add_instigator_state(state)
    return state


def _status(instance, task_id: str) -> InstigatorStatus:
    state = policies.find_schedule_state(instance, f"{task_id}_schedule")
    assert state is not None
    return state.status


FAILURE, SUCCESS = dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.SUCCESS


def test_n_consecutive_failures_pause_the_schedule_once_with_one_alert(defs, monkeypatch):
    task = "flaky_pausable"
    with dg.instance_for_test() as instance:
        _schedule_state(instance, task)
        ticker = PolicyTicker(defs, instance, monkeypatch)
        for _ in range(2):
            _add_run(instance, task, FAILURE)
        _add_run(instance, task, dg.DagsterRunStatus.CANCELED)  # neither counts nor resets
        ticker.tick()
        assert _status(instance, task) == InstigatorStatus.DECLARED_IN_CODE
        last = _add_run(instance, task, FAILURE)
        ticker.tick()
        ticker.tick()
        assert _status(instance, task) == InstigatorStatus.STOPPED
        [alert] = [a for a in ticker.alerts if a.task == task]
        assert alert.kind == "paused" and alert.run_id == last.run_id
        reason = paused_reasons(ticker.cursor)[task]
        assert "3 consecutive failed runs (pause_after_failures=3;" in reason
        assert "validibot-ops resume flaky_pausable" in reason

        # sync_schedules --check: drift with that reason, and a sync never restarts it.
        task_def = next(t for t in TASKS if t.id == task)
        observed = {
            task_def.schedule_name: ObservedSchedule(
                task_def.schedule_name, STOPPED, RUNNING, task_def.cron, paused_reason=reason
            )
        }
        plan = plan_schedules([task_def], observed)
        assert plan.drifted and not plan.changes
        assert reason in plan.render()

        # Resumed (what `validibot-ops resume` does: start the schedule): the pause clears and
        # the task gets three fresh tries; a fourth failure alone does not pause it again.
        stored = policies.find_schedule_state(instance, task_def.schedule_name)
        instance.update_instigator_state(stored.with_status(InstigatorStatus.RUNNING))
        ticker.tick()
        assert task not in paused_reasons(ticker.cursor)
        _add_run(instance, task, FAILURE)
        ticker.tick()
        assert _status(instance, task) == InstigatorStatus.RUNNING
        for _ in range(2):
            _add_run(instance, task, FAILURE)
        ticker.tick()
        assert _status(instance, task) == InstigatorStatus.STOPPED
        assert len([a for a in ticker.alerts if a.task == task]) == 2


def test_a_successful_manual_run_resets_the_count(defs, monkeypatch):
    task = "flaky_pausable"
    with dg.instance_for_test() as instance:
        _schedule_state(instance, task)
        ticker = PolicyTicker(defs, instance, monkeypatch)
        for _ in range(2):
            _add_run(instance, task, FAILURE)
        _add_run(instance, task, SUCCESS, dry_run=True)  # a dry run proves nothing
        _add_run(instance, task, SUCCESS)  # e.g. launched from the UI after a fix
        for _ in range(2):
            _add_run(instance, task, FAILURE)
        ticker.tick()
        assert _status(instance, task) == InstigatorStatus.DECLARED_IN_CODE
        assert not ticker.alerts


def test_a_stopped_schedule_is_not_paused_again(defs, monkeypatch):
    task = "flaky_pausable"
    with dg.instance_for_test() as instance:
        _schedule_state(instance, task, InstigatorStatus.STOPPED)
        ticker = PolicyTicker(defs, instance, monkeypatch)
        for _ in range(4):
            _add_run(instance, task, FAILURE)
        ticker.tick()
        assert not ticker.alerts and task not in paused_reasons(ticker.cursor)


def test_privacy_tasks_are_never_paused_and_alert_with_rising_severity(defs, monkeypatch):
    task = "flaky_private"
    with dg.instance_for_test() as instance:
        _schedule_state(instance, task)
        ticker = PolicyTicker(defs, instance, monkeypatch)
        seen = []
        for _ in range(17):
            _add_run(instance, task, FAILURE)
            ticker.tick()
            ticker.tick()  # a second tick on the same history sends nothing more
            seen.append([a.status for a in ticker.alerts if a.task == task])
        assert _status(instance, task) == InstigatorStatus.DECLARED_IN_CODE
        statuses = seen[-1]
        assert statuses == ["WARNING", "ERROR", "CRITICAL", "CRITICAL"]
        assert len(seen[1]) == 1 and len(seen[3]) == 2 and len(seen[7]) == 3
        assert len(seen[15]) == 4  # 16 failures: CRITICAL again at the doubling
        _add_run(instance, task, SUCCESS)
        ticker.tick()
        assert ticker.alerts[-1].kind == "recovered"
        assert FailurePolicyState.load(ticker.cursor).levels == {}
        _add_run(instance, task, FAILURE)
        _add_run(instance, task, FAILURE)
        ticker.tick()
        assert ticker.alerts[-1].status == "WARNING"  # a new streak starts low again
