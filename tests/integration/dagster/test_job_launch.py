"""`dagster job launch` on the production-like instance: Postgres storage, the queued run
coordinator with one run per task, the daemon and a Celery worker."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from tests.support.dagster_stack import REPO_ROOT, DagsterStack
from tests.support.services import wait_until
from validibot_ops.tags import TASK_TAG, TRIGGER_TAG

pytestmark = [pytest.mark.services, pytest.mark.timeout(600)]

WORKSPACE = str(REPO_ROOT / "workspace.local.yaml")


@pytest.fixture(scope="module")
def prod_stack(postgres_service, redis_service, tmp_path_factory):
    with DagsterStack.create(tmp_path_factory.mktemp("launch-stack"), executor="celery") as stack:
        stack.start_worker("default", name="launch-worker")
        stack.start_daemon()
        yield stack


def _launch(stack, job: str, *extra: str):
    argv = [
        "dagster",
        "job",
        "launch",
        "-w",
        WORKSPACE,
        "-j",
        job,
        "--tags",
        json.dumps({TRIGGER_TAG: "cli"}),
        *extra,
    ]
    result = stack.run_cli(argv, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _runs(stack, task_id: str) -> list[dg.DagsterRun]:
    with stack.instance() as instance:
        return [
            r.dagster_run
            for r in instance.get_run_records(
                dg.RunsFilter(tags={TASK_TAG: task_id}), ascending=True
            )
        ]


def _wait_finished(stack, task_id: str, count: int, timeout: float = 240) -> list[dg.DagsterRun]:
    def finished() -> bool:
        runs = _runs(stack, task_id)
        return len(runs) >= count and all(r.is_finished for r in runs)

    wait_until(finished, timeout, interval=1, what=f"{count} finished run(s) of {task_id}")
    return _runs(stack, task_id)


def test_dagster_job_launch_queues_a_run_that_the_daemon_executes(prod_stack):
    prod_stack.manage("seed_demo_data", "--no-files")
    _launch(prod_stack, "clear_sessions")
    [run] = _wait_finished(prod_stack, "clear_sessions", 1)
    assert run.status == dg.DagsterRunStatus.SUCCESS, run.status
    assert run.tags[TRIGGER_TAG] == "cli"
    remaining = prod_stack.sql("select count(*) from django_session where expire_date <= now()")[0][
        0
    ]
    assert remaining == 0


def test_two_launches_of_one_task_never_overlap(prod_stack):
    """The tag concurrency limit in dagster.yaml holds the second run in the queue."""
    config = json.dumps({"ops": {"test_slow": {"config": {"extra_args": ["--seconds", "4"]}}}})
    _launch(prod_stack, "test_slow", "--config-json", config)
    _launch(prod_stack, "test_slow", "--config-json", config)
    first, second = _wait_finished(prod_stack, "test_slow", 2)
    assert first.status == second.status == dg.DagsterRunStatus.SUCCESS
    with prod_stack.instance() as instance:
        records = {
            r.dagster_run.run_id: r
            for r in instance.get_run_records(dg.RunsFilter(tags={TASK_TAG: "test_slow"}))
        }
    a, b = sorted(records.values(), key=lambda r: r.start_time)
    assert a.end_time <= b.start_time, "two runs of one task overlapped"
