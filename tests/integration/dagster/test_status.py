"""`manage.py scheduled_task_status` reads real run history over GraphQL."""

from __future__ import annotations

import json
import sys

import pytest

from tests.support.dagster_stack import TEST_TASK_MODULE, DagsterStack

pytestmark = [pytest.mark.services, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def status_stack(postgres_service, tmp_path_factory):
    modules = (TEST_TASK_MODULE, "tests.support.testapp.tasks_enabled_failure")
    root = tmp_path_factory.mktemp("status-stack")
    with DagsterStack.create(root, executor="in_process", task_modules=modules) as st:
        _proc, st.url = st.start_webserver()
        yield st


def _execute(stack, job: str) -> None:
    stack.run_cli(["dagster", "job", "execute", "-m", "validibot_ops.definitions", "-j", job])


def _status(stack, *args: str):
    result = stack.run_cli(
        [sys.executable, "manage.py", "scheduled_task_status", "--url", stack.url, *args],
        timeout=120,
    )
    return result


def test_status_shows_last_run_rows_affected_and_health(status_stack):
    status_stack.manage("seed_demo_data", "--no-files")
    _execute(status_stack, "clear_sessions")
    _execute(status_stack, "test_always_fail")
    _execute(status_stack, "test_enabled_failure")

    result = _status(status_stack, "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["task"]: row for row in json.loads(result.stdout.strip().splitlines()[-1])}
    sessions = rows["clear_sessions"]
    assert sessions["health"] == "healthy"
    assert sessions["last_status"] == "SUCCESS"
    assert sessions["last_trigger"] == "cli"  # `dagster job execute`: the op resolved `manual`
    assert sessions["counts"]["deleted"] > 0
    assert sessions["duration_s"] is not None
    assert sessions["next_tick"]
    assert rows["test_enabled_failure"]["health"] == "failing"
    assert rows["test_enabled_failure"]["last_status"] == "FAILURE"
    # A disabled task is reported as such, whatever its last manual run did.
    assert rows["test_always_fail"]["health"] == "disabled"
    assert rows["test_always_fail"]["last_status"] == "FAILURE"
    assert rows["purge_expired_outputs"]["health"] == "never_run"
    assert rows["purge_expired_outputs"]["last_status"] is None

    table = _status(status_stack)
    assert table.returncode == 0
    assert "clear_sessions" in table.stdout and "deleted=" in table.stdout

    probe = _status(status_stack, "--fail-on-unhealthy")
    assert probe.returncode == 1
    assert "test_enabled_failure" in probe.stderr


def test_status_rejects_an_unknown_task(status_stack):
    result = _status(status_stack, "--task", "no_such_task")
    assert result.returncode == 1
    assert "unknown task id(s): no_such_task" in result.stderr
