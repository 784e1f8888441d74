"""A real dagster-daemon judges freshness; the sensor alerts once; status and doctor agree.

The stack's test task is an hourly no-op; ``VALIDIBOT_ALERT_GRACE_INTERVALS=0.05`` makes its
freshness window 3 min (long enough to see it fresh on a loaded machine), and
``FRESHNESS_DAEMON_INTERVAL_SECONDS=5`` makes Dagster's freshness daemon evaluate every 5 s.
Nothing is mocked; the webhook is a real local HTTP server.
"""

from __future__ import annotations

import json
import sys

import pytest

from tests.support.dagster_stack import DagsterStack
from tests.support.services import wait_until

pytestmark = [pytest.mark.services, pytest.mark.timeout(1500)]

TASK = "test_hourly_noop"
MODULE = "tests.support.testapp.tasks_freshness"


def _status(stack: DagsterStack) -> dict:
    result = stack.run_cli(
        [sys.executable, "manage.py", "scheduled_task_status", "--url", stack.url, "--json"],
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    return {row["task"]: row for row in rows}[TASK]


def _doctor_task_health(stack: DagsterStack) -> dict:
    result = stack.run_cli(
        [sys.executable, "manage.py", "doctor", "--url", stack.url, "--json",
         "--skip", "workers", "--skip", "redis"],
        timeout=120,
    )  # fmt: skip
    return {row["check"]: row for row in json.loads(result.stdout.strip().splitlines()[-1])}[
        "task_health"
    ]


def _execute(stack: DagsterStack) -> None:
    stack.run_cli(
        ["dagster", "job", "execute", "-m", "validibot_ops.definitions", "-j", TASK], check=True
    )


def test_the_daemon_judges_late_then_fresh_and_every_view_agrees(
    postgres_service,
    tmp_path,
    webhook,
):
    url, received = webhook
    extra_env = {
        "VALIDIBOT_ALERT_WEBHOOK_URL": url,
        "VALIDIBOT_ALERT_GRACE_INTERVALS": "0.05",
        "FRESHNESS_DAEMON_INTERVAL_SECONDS": "5",
    }
    with DagsterStack.create(
        tmp_path, executor="in_process", task_modules=(MODULE,), extra_env=extra_env
    ) as stack:
        daemon = stack.start_daemon()
        _proc, stack.url = stack.start_webserver()

        seen: dict[str, dict] = {}

        def state(expected: str):
            def check() -> bool:
                assert daemon.alive(), daemon.log()[-3000:]
                seen[expected] = _status(stack)
                return seen[expected]["health"] == expected

            return check

        _execute(stack)
        wait_until(state("healthy"), timeout=170, interval=3, what="Dagster judging it fresh")
        assert seen["healthy"]["freshness"] == "HEALTHY"

        wait_until(state("late"), timeout=400, interval=5, what="Dagster judging it late")
        assert seen["late"]["freshness"] == "DEGRADED"
        assert "freshness policy failed" in seen["late"]["reason"]
        doctor = _doctor_task_health(stack)
        assert doctor["status"] == "FAIL" and TASK in doctor["detail"]

        def alerted(kind: str):
            return lambda: any(h["task"] == TASK and h["kind"] == kind for h in received)

        wait_until(alerted("late"), timeout=240, interval=2, what="the late alert")

        _execute(stack)
        wait_until(state("healthy"), timeout=400, interval=3, what="fresh again")
        wait_until(alerted("recovered"), timeout=240, interval=2, what="the recovered alert")
        assert [h["kind"] for h in received if h["task"] == TASK] == ["late", "recovered"]
        # Other registry tasks the daemon ran on schedule may be late by now (their windows
        # shrank too); this one is not.
        assert TASK not in _doctor_task_health(stack)["detail"]
