"""A real dagster-daemon evaluates the failure sensor and delivers to a real local webhook."""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import InstigatorType  # no public export

from tests.support.dagster_stack import DagsterStack
from tests.support.services import wait_until
from validibot_ops.sensors import RUN_FAILURE_SENSOR_NAME
from validibot_ops.tags import TASK_TAG

pytestmark = [pytest.mark.services, pytest.mark.timeout(400)]


def _sensor_cursor(stack: DagsterStack) -> str | None:
    with stack.instance() as instance:
        for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
            if state.name == RUN_FAILURE_SENSOR_NAME and state.instigator_data is not None:
                return state.instigator_data.cursor
    return None


def test_the_daemon_alerts_once_with_the_run_id_of_a_cli_run_that_failed(
    postgres_service, tmp_path, webhook
):
    url, received = webhook
    extra_env = {
        "VALIDIBOT_ALERT_WEBHOOK_URL": url,
        "VALIDIBOT_DAGSTER_UI_URL": "http://127.0.0.1:3000",
    }
    with DagsterStack.create(tmp_path, executor="in_process", extra_env=extra_env) as stack:
        daemon = stack.start_daemon()

        def sensor_started() -> bool:
            assert daemon.alive(), daemon.log()[-3000:]
            return _sensor_cursor(stack) is not None

        # The first tick only places the cursor; a failure before it would not be reported.
        wait_until(sensor_started, timeout=120, interval=1, what="the failure sensor's first tick")

        result = stack.run_cli(
            [
                "dagster",
                "job",
                "execute",
                "-m",
                "validibot_ops.definitions",
                "-j",
                "test_always_fail",
            ]
        )
        assert result.returncode != 0, "the job was expected to fail"
        with stack.instance() as instance:
            [record] = instance.get_run_records(
                dg.RunsFilter(tags={TASK_TAG: "test_always_fail"}), limit=5
            )
        run = record.dagster_run
        assert run.status == dg.DagsterRunStatus.FAILURE

        def alerted() -> bool:
            assert daemon.alive(), daemon.log()[-3000:]
            return any(hook.get("run_id") == run.run_id for hook in received)

        wait_until(alerted, timeout=120, interval=1, what="the failure alert on the webhook")
        [hook] = [h for h in received if h.get("kind") == "run_failed"]
        assert hook["task"] == "test_always_fail"
        assert hook["status"] == "FAILURE"
        assert "storage backend refused the request" in hook["error"]
        assert hook["ui_url"] == f"http://127.0.0.1:3000/runs/{run.run_id}"
