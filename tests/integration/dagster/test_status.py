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


def _execute(stack, job: str, *args: str) -> None:
    argv = ["dagster", "job", "execute", "-m", "validibot_ops.definitions", "-j", job, *args]
    stack.run_cli(argv)


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
    dry = status_stack.root / "dry-run.yaml"
    dry.write_text("ops:\n  cleanup_stuck_runs:\n    config:\n      dry_run: true\n")
    _execute(status_stack, "cleanup_stuck_runs", "-c", str(dry))

    result = _status(status_stack, "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["task"]: row for row in json.loads(result.stdout.strip().splitlines()[-1])}
    sessions = rows["clear_sessions"]
    # Health is Dagster's freshness verdict; this stack runs no daemon, so there is none yet
    # (test_freshness_daemon.py has the daemon judge healthy and late).
    assert sessions["health"] == "pending"
    assert sessions["freshness"] == "UNKNOWN"
    assert "is dagster-daemon running?" in sessions["reason"]
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
    # A dry run succeeds but materializes nothing: it never reads as a fresh success.
    dry_row = rows["cleanup_stuck_runs"]
    assert (dry_row["last_status"], dry_row["last_dry_run"]) == ("SUCCESS", True)
    assert dry_row["health"] == "pending"
    assert rows["purge_expired_outputs"]["last_status"] is None

    table = _status(status_stack)
    assert table.returncode == 0
    assert "clear_sessions" in table.stdout and "deleted=" in table.stdout
    assert "SUCCESS (dry run)" in table.stdout

    probe = _status(status_stack, "--fail-on-unhealthy")
    assert probe.returncode == 1
    assert "test_enabled_failure" in probe.stderr


def test_status_says_why_it_has_no_verdict_when_dagster_is_unreachable(status_stack):
    from tests.support.dagster_stack import free_port

    result = _status_at(status_stack, f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "is unreachable" in result.stderr
    assert "task health is Dagster's own freshness verdict" in result.stderr


def _status_at(stack, url: str):
    return stack.run_cli(
        [sys.executable, "manage.py", "scheduled_task_status", "--url", url], timeout=120
    )


def test_status_rejects_an_unknown_task(status_stack):
    result = _status(status_stack, "--task", "no_such_task")
    assert result.returncode == 1
    assert "unknown task id(s): no_such_task" in result.stderr
