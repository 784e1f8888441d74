"""A task's runs judge its outcome checks, and a real dagster-daemon alerts once, then
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


KEY = dg.AssetCheckKey(dg.AssetKey(["validibot_maintenance", TASK]), "expired_content_kept")


def _verdicts(stack: DagsterStack) -> dict[str, checks.Outcome]:
    """Each run's verdict on the check, by run id (the hourly check job may add one)."""
    with stack.instance() as instance:
        records = instance.event_log_storage.get_asset_check_execution_history(KEY, limit=20)
        return {
            r.run_id: checks.latest_outcome(r, instance)
            for r in records
            if r.status != AssetCheckExecutionRecordStatus.PLANNED
        }


def _task_runs(stack: DagsterStack) -> list[str]:
    with stack.instance() as instance:
        records = instance.get_run_records(dg.RunsFilter(tags={TASK_TAG: TASK}), limit=20)
    return [r.dagster_run.run_id for r in records]


def test_each_run_judges_the_checks_and_the_daemon_alerts_once_then_recovered(
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
            return _cursor(stack, checks.ALERT_SENSOR) is not None

        wait_until(sensors_started, timeout=300, interval=2, what="the alert sensor's first tick")

        dry = tmp_path / "dry.json"
        dry.write_text(json.dumps({"ops": {TASK: {"config": {"dry_run": True}}}}))
        job = ["dagster", "job", "execute", "-m", "validibot_ops.definitions", "-j", TASK]
        assert stack.run_cli([*job, "-c", str(dry)]).returncode == 0

        def alerted() -> bool:
            assert daemon.alive(), daemon.log()[-3000:]
            return any(hook.get("kind") == checks.CHECK_FAILED for hook in received)

        # The dry run's own verdict: WARN, one row (a dry run changes nothing, so it judges
        # the data as it is).
        verdict = _verdicts(stack)[_task_runs(stack)[0]]
        assert (verdict.passed, verdict.severity) == (False, "WARN"), verdict
        assert "1 offending row(s)" in verdict.description
        wait_until(alerted, timeout=600, interval=2, what="the check_failed alert on the webhook")
        [hook] = received
        assert (hook["kind"], hook["task"], hook["status"]) == (checks.CHECK_FAILED, TASK, "WARN")

        assert stack.run_cli(job).returncode == 0  # a real purge cleans the row

        def recovered() -> bool:
            assert daemon.alive(), daemon.log()[-3000:]
            return any(hook.get("status") == "RECOVERED" for hook in received)

        wait_until(recovered, timeout=600, interval=2, what="the recovered alert")
        assert [h["status"] for h in received] == ["WARN", "RECOVERED"]
        purge_run, dry_run = _task_runs(stack)
        assert _verdicts(stack)[purge_run].passed  # judged in the purge's own run
        assert not _verdicts(stack)[dry_run].passed
        assert stack.sql("SELECT content FROM submissions_submission") == [("",)]
