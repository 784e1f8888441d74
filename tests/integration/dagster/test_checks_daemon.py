"""A real dagster-daemon runs a task's outcome checks after its runs and alerts once, then
"recovered", on a real local webhook (Postgres instance and database, CLI-launched runs)."""

from __future__ import annotations

import json

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import InstigatorType  # no public export
from dagster._core.storage.asset_check_execution_record import (  # no public export
    AssetCheckExecutionRecordStatus,
)

from tests.support.dagster_stack import DagsterStack
from tests.support.services import wait_until
from validibot.tasks.registry import BUILTIN_TASKS
from validibot_ops import checks
from validibot_ops.tags import TASK_TAG

pytestmark = [pytest.mark.services, pytest.mark.timeout(1500)]

TASK = "purge_expired_submissions"


def _cursor(stack: DagsterStack, sensor: str) -> str | None:
    with stack.instance() as instance:
        for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
            if state.name == sensor and state.instigator_data is not None:
                return state.instigator_data.cursor
    return None


def _check_runs(stack: DagsterStack) -> list[dg.RunRecord]:
    with stack.instance() as instance:
        return list(
            instance.get_run_records(dg.RunsFilter(tags={checks.CHECKS_TAG: TASK}), limit=20)
        )


def _latest(stack: DagsterStack) -> checks.Outcome | None:
    """The check's latest verdict (``None`` until one was evaluated)."""
    key = dg.AssetCheckKey(dg.AssetKey(["validibot_maintenance", TASK]), "expired_content_kept")
    with stack.instance() as instance:
        record = instance.event_log_storage.get_latest_asset_check_execution_by_key([key]).get(key)
        if record is None or record.status == AssetCheckExecutionRecordStatus.PLANNED:
            return None
        return checks.latest_outcome(record, instance)


def _checked_runs(stack: DagsterStack) -> set[str]:
    """The task runs the check runs were requested after."""
    return {r.dagster_run.tags[checks.CHECKED_RUN_TAG] for r in _check_runs(stack)}


def _task_runs(stack: DagsterStack) -> list[str]:
    with stack.instance() as instance:
        records = instance.get_run_records(dg.RunsFilter(tags={TASK_TAG: TASK}), limit=20)
    return [r.dagster_run.run_id for r in records]


def test_the_daemon_checks_after_each_run_and_alerts_once_then_recovered(
    postgres_service, tmp_path, webhook
):
    url, received = webhook
    # Every schedule paused: the scheduled purge must not clean up first, and the other
    # tasks' runs would only compete for the machine with the runs this test waits for.
    overrides = tmp_path / "overrides.json"
    paused = {"enabled": False, "reason": "test", "author": "ci"}
    overrides.write_text(json.dumps({t.id: paused for t in BUILTIN_TASKS}))
    extra_env = {
        "VALIDIBOT_ALERT_WEBHOOK_URL": url,
        "VALIDIBOT_SCHEDULE_OVERRIDES": str(overrides),
    }
    with DagsterStack.create(
        tmp_path, executor="in_process", task_modules=(), extra_env=extra_env
    ) as stack:
        stack.sql(
            "INSERT INTO submissions_submission "
            "(name, content, file, retention_policy, created_at, expires_at) VALUES "
            "('expired', 'secret', '', '7d', now() - interval '8 days', now() - interval '5 hours')"
        )
        daemon = stack.start_daemon()

        def sensors_started() -> bool:
            assert daemon.alive(), daemon.log()[-3000:]
            return all(
                _cursor(stack, name) is not None
                for name in (checks.AFTER_RUNS_SENSOR, checks.ALERT_SENSOR)
            )

        wait_until(sensors_started, timeout=300, interval=2, what="both check sensors' first tick")

        dry = tmp_path / "dry.json"
        dry.write_text(json.dumps({"ops": {TASK: {"config": {"dry_run": True}}}}))
        job = ["dagster", "job", "execute", "-m", "validibot_ops.definitions", "-j", TASK]
        assert stack.run_cli([*job, "-c", str(dry)]).returncode == 0

        def alerted() -> bool:
            assert daemon.alive(), daemon.log()[-3000:]
            return any(hook.get("kind") == checks.CHECK_FAILED for hook in received)

        wait_until(alerted, timeout=600, interval=2, what="the check_failed alert on the webhook")
        # The check's verdict: WARN, one row. On a loaded machine the daemon's launch of the
        # check run can time out; the alert then says the run ended without a result (ERROR)
        # and the run retry brings the verdict, without a second alert.
        wait_until(lambda: _latest(stack) is not None, timeout=600, interval=2, what="a verdict")
        verdict = _latest(stack)
        assert (verdict.passed, verdict.severity) == (False, "WARN"), verdict
        assert "1 offending row(s)" in verdict.description
        # One check run per task run; a run retry of it copies its tags.
        assert _checked_runs(stack) == {_task_runs(stack)[0]}
        [hook] = received
        assert (hook["kind"], hook["task"]) == (checks.CHECK_FAILED, TASK), hook
        assert hook["status"] == "WARN" or "without a result" in hook["error"], hook

        assert stack.run_cli(job).returncode == 0  # a real purge cleans the row

        def recovered() -> bool:
            assert daemon.alive(), daemon.log()[-3000:]
            return any(hook.get("status") == "RECOVERED" for hook in received)

        wait_until(recovered, timeout=600, interval=2, what="the recovered alert")
        assert [h["status"] for h in received] == ["WARN", "RECOVERED"]
        assert _checked_runs(stack) == set(_task_runs(stack))
        assert len(_task_runs(stack)) == 2
        assert stack.sql("SELECT content FROM submissions_submission") == [("",)]
