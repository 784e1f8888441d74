"""Pause after repeated failure, end to end: a real daemon's failure-policy sensor stops the
schedule, both ``sync_schedules --check`` paths report the drift with its reason, the status
command shows it, and ``validibot-ops resume`` starts the schedule again."""

from __future__ import annotations

import re
import sys

import pytest

from tests.support.dagster_stack import TEST_TASK_MODULE, DagsterStack
from tests.support.services import wait_until
from validibot.operations.dagster_client import DagsterClient
from validibot.tasks.policies import FAILURE_POLICY_SENSOR, paused_reasons

# Three code-server loads (validibot-ops twice, manage.py status): slow on a busy host.
pytestmark = [pytest.mark.services, pytest.mark.timeout(1800)]
TASK = "test_pausable"
SCHEDULE = f"{TASK}_schedule"


def test_two_failures_pause_the_schedule_until_resumed(postgres_service, tmp_path):
    with DagsterStack.create(
        tmp_path,
        executor="in_process",
        task_modules=(TEST_TASK_MODULE, "tests.support.testapp.policy_tasks"),
    ) as stack:
        daemon = stack.start_daemon()
        _, url = stack.start_webserver()
        client = DagsterClient(url)
        assert client.get_schedule(SCHEDULE).status == "RUNNING"

        for _ in range(2):
            run = client.wait_for_run(client.launch_task(TASK), timeout=300)
            assert run.status == "FAILURE", daemon.log()[-3000:]

        def paused() -> bool:
            # The schedule stops during the sensor's tick, its cursor is saved at the end.
            assert daemon.alive(), daemon.log()[-3000:]
            stopped = client.get_schedule(SCHEDULE).status == "STOPPED"
            return stopped and TASK in paused_reasons(client.sensor_cursor(FAILURE_POLICY_SENSOR))

        wait_until(paused, 300, interval=2, what="the failure policy pausing the schedule")
        reason = paused_reasons(client.sensor_cursor(FAILURE_POLICY_SENSOR))[TASK]
        # At least two: a run retry (run_retries in dagster.yaml) can add a failed run.
        assert re.search(r"after \d+ consecutive failed runs \(pause_after_failures=2;", reason)
        assert "ALERT PAUSED test_pausable" in daemon.log()

        env_cli = [sys.executable, "manage.py"]
        check = stack.run_cli([*env_cli, "sync_schedules", "--url", url, "--check"])
        assert check.returncode == 1, check.stdout + check.stderr
        assert f"! {SCHEDULE}: {reason}" in check.stdout
        ops_check = stack.run_cli(["validibot-ops", "sync-schedules", "--check"])
        assert ops_check.returncode == 1 and f"! {SCHEDULE}: {reason}" in ops_check.stdout
        synced = stack.run_cli([*env_cli, "sync_schedules", "--url", url])
        assert synced.returncode == 0, synced.stderr
        assert client.get_schedule(SCHEDULE).status == "STOPPED", "a sync never resumes it"

        status = stack.run_cli([*env_cli, "scheduled_task_status", "--url", url, "--task", TASK])
        assert status.returncode == 0, status.stderr
        assert "pause=after 2 failures" in status.stdout
        assert f"PAUSED: {reason}" in status.stdout

        resumed = stack.run_cli(["validibot-ops", "resume", TASK])
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert f"resumed {SCHEDULE}" in resumed.stdout
        assert client.get_schedule(SCHEDULE).status == "RUNNING"

        def cleared() -> bool:
            assert daemon.alive(), daemon.log()[-3000:]
            return TASK not in paused_reasons(client.sensor_cursor(FAILURE_POLICY_SENSOR))

        wait_until(cleared, 300, interval=2, what="the sensor clearing the pause")
        again = stack.run_cli([*env_cli, "sync_schedules", "--url", url, "--check"])
        assert again.returncode == 0, again.stdout
