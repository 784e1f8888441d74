"""`manage.py doctor` against a real stack: every check passes, then each fault is named."""

from __future__ import annotations

import json
import sys

import pytest

from tests.support.dagster_stack import DagsterStack, free_port
from tests.support.services import wait_until
from validibot.operations.dagster_client import DagsterClient

pytestmark = [pytest.mark.services, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def doctor_stack(postgres_service, redis_service, tmp_path_factory):
    with DagsterStack.create(
        tmp_path_factory.mktemp("doctor-stack"), executor="celery", task_modules=()
    ) as stack:
        stack.start_worker("default", name="doctor-default")
        stack.start_daemon()
        _proc, url = stack.start_webserver()
        stack.url = url
        yield stack


def _doctor(stack, *args: str, env: dict | None = None):
    result = stack.run_cli(
        [sys.executable, "manage.py", "doctor", "--url", stack.url, "--json", *args],
        timeout=120,
        env=env,
    )
    rows = {row["check"]: row for row in json.loads(result.stdout.strip().splitlines()[-1])}
    return result.returncode, rows


def test_doctor_names_the_missing_docker_queue_worker_then_passes(doctor_stack):
    def daemon_up() -> bool:
        return _doctor(doctor_stack, "--skip", "workers")[1]["daemon"]["status"] == "ok"

    wait_until(daemon_up, 90, interval=2, what="daemon heartbeats visible to doctor")
    code, rows = _doctor(doctor_stack)
    assert code == 1
    assert rows["workers"]["status"] == "FAIL"
    assert "docker" in rows["workers"]["detail"]
    assert "validibot-ops worker --queue docker" in rows["workers"]["detail"]

    doctor_stack.start_worker("docker", name="doctor-docker")
    code, rows = _doctor(doctor_stack)
    assert code == 0, rows
    assert {name: row["status"] for name, row in rows.items()} == {
        "settings": "ok",
        "database": "ok",
        "redis": "ok",
        "workers": "ok",
        "code_location": "ok",
        "daemon": "ok",
        "schedules": "ok",
        "overrides": "ok",
        "task_health": "ok",  # nothing has run: Dagster has no verdict, nothing is late
        "maintenance": "ok",
        "clock_changes": "ok",
    }


def test_doctor_warns_about_a_schedule_toggled_off_in_the_ui(doctor_stack):
    client = DagsterClient(doctor_stack.url)
    client.stop_schedule("clear_sessions_schedule")
    try:
        code, rows = _doctor(doctor_stack, "--skip", "workers")
        assert rows["schedules"]["status"] == "warn"
        assert "clear_sessions_schedule" in rows["schedules"]["detail"]
        assert code == 0  # drift is a warning: sync_schedules is the fix, not an outage
    finally:
        client.start_schedule("clear_sessions_schedule")


def test_doctor_fails_clearly_on_a_dead_broker_without_printing_its_password(doctor_stack):
    dead = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"
    code, rows = _doctor(doctor_stack, "--timeout", "2", env={"REDIS_URL": dead})
    assert code == 1
    assert rows["redis"]["status"] == "FAIL"
    assert "hunter2" not in json.dumps(rows)
    assert ":**@127.0.0.1" in rows["redis"]["detail"]  # kombu's maybe_sanitize_url


def test_doctor_fails_when_the_webserver_is_down(doctor_stack):
    code, rows = _doctor(
        doctor_stack, "--skip", "workers", "--url", f"http://127.0.0.1:{free_port()}"
    )
    assert code == 1
    for check in ("code_location", "daemon", "schedules"):
        assert rows[check]["status"] == "FAIL"
        assert "unreachable" in rows[check]["detail"]
