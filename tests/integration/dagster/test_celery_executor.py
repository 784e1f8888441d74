"""Jobs through the Celery executor: real Redis, real worker processes, Postgres run storage."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from tests.support.testapp.management.commands.always_fail_task import ERROR

pytestmark = [pytest.mark.services, pytest.mark.timeout(600)]


def _execute(stack, job: str, config: dict | None = None, env: dict | None = None):
    argv = ["dagster", "job", "execute", "-m", "validibot_ops.definitions", "-j", job]
    if config:
        path = stack.root / f"{job}-config.json"
        path.write_text(json.dumps({"ops": {job: {"config": config}}}))
        argv += ["-c", str(path)]
    return stack.run_cli(argv, timeout=300, env=env)


def _last_run(instance, job: str) -> dg.DagsterRun:
    [record] = instance.get_run_records(dg.RunsFilter(job_name=job), limit=1)
    return record.dagster_run


def _worker_hostnames(instance, run_id: str) -> set[str]:
    hosts = set()
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        metadata = entry.dagster_event.engine_event_data.metadata or {}
        if "Celery worker" in metadata:
            hosts.add(metadata["Celery worker"].value)
    return hosts


def test_a_job_runs_on_a_celery_worker_and_its_history_is_in_postgres(celery_stack):
    stack = celery_stack
    stack.manage("seed_demo_data", "--no-files")
    expired_before = stack.sql(
        "select count(*) from submissions_submission "
        "where content_purged_at is null and expires_at <= now()"
    )[0][0]
    result = _execute(stack, "purge_expired_submissions")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    with stack.instance() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        run = _last_run(instance, "purge_expired_submissions")
        assert run.status == dg.DagsterRunStatus.SUCCESS
        hosts = _worker_hostnames(instance, run.run_id)
        [mat] = [
            e
            for e in instance.all_logs(
                run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
            )
        ]
        purged = mat.dagster_event.event_specific_data.materialization.metadata["purged"].value
    assert any(h.startswith("default-worker@") for h in hosts), hosts
    # The worker's command changed the rows in the shared Django database.
    purged_rows = stack.sql(
        "select count(*) from submissions_submission where content_purged_at is not null"
    )[0][0]
    assert purged_rows == purged > 0
    assert purged <= expired_before


def test_the_container_task_is_routed_to_the_docker_queue_worker(celery_stack):
    """Routing is proven with workers bound to queues, not by reading config (PR #33281)."""
    result = _execute(celery_stack, "cleanup_orphaned_containers")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with celery_stack.instance() as instance:
        run = _last_run(instance, "cleanup_orphaned_containers")
        hosts = _worker_hostnames(instance, run.run_id)
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert hosts and all(h.startswith("docker-worker@") for h in hosts), hosts


def test_a_command_that_fails_once_is_retried_and_the_run_succeeds(celery_stack):
    marker = celery_stack.root / "flaky-marker"
    result = _execute(celery_stack, "test_flaky")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with celery_stack.instance() as instance:
        run = _last_run(instance, "test_flaky")
        types = [
            e.dagster_event.event_type
            for e in instance.all_logs(run.run_id)
            if e.dagster_event is not None
        ]
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert types.count(dg.DagsterEventType.STEP_UP_FOR_RETRY) == 1
    assert dg.DagsterEventType.STEP_RESTARTED in types
    assert marker.read_text() == "2"


def test_a_command_that_always_fails_ends_in_failure_with_its_error(celery_stack):
    result = _execute(celery_stack, "test_always_fail")
    assert result.returncode != 0
    with celery_stack.instance() as instance:
        run = _last_run(instance, "test_always_fail")
        failures = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    assert run.status == dg.DagsterRunStatus.FAILURE
    assert failures
    assert ERROR in failures[-1].dagster_event.step_failure_data.user_failure_data.description
