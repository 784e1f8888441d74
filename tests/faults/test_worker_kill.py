"""Celery executor mode: a worker killed mid-op, and a step that arrives after its run was
terminated (warm mode, the default, has its own scenarios in test_warm_runs.py).

What ends a run whose worker died: the step's message stays unacknowledged in Redis (acks
late), but Redis redelivers it only after the visibility timeout (over an hour), so it is run
monitoring that fails the run once its ``dagster/max_runtime`` (hard limit + 60 s) passes,
and run retries that launch it again as a new run on the surviving worker. When the old step
is finally redelivered, the op guard refuses it because its run is over.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import dagster as dg
import pytest
import redis

from tests.faults import figures
from tests.faults.helpers import (
    PURGE_LOG_ENV,
    SLOW_PURGE,
    Clock,
    purge_log,
    purged_exactly_once,
    run_failure_message,
    run_record,
    runs_of,
    seed_submissions,
    step_failure_messages,
    stuck_runs,
    submission_state,
    wait_run_and_retry,
)
from tests.support.services import wait_until
from validibot.operations.dagster_client import DagsterClient
from validibot_ops.jobs import STOP_MARGIN_SECONDS

pytestmark = [pytest.mark.services, pytest.mark.timeout(420)]

EXPIRED, FRESH, BATCH = 60, 20, 5
PURGE_ARGS = ["--batch-size", str(BATCH), "--max-batches", "0", "--pause", "0.2"]
HARD_LIMIT_S = 30  # tests/support/testapp/fault_tasks.py
MAX_RUNTIME_S = HARD_LIMIT_S + STOP_MARGIN_SECONDS  # the job's dagster/max_runtime


def _reset(stack) -> Path:
    seed_submissions(stack, EXPIRED, FRESH)
    log = Path(stack.env[PURGE_LOG_ENV])
    log.write_text("")
    return log


def _broker(stack) -> redis.Redis:
    return redis.Redis.from_url(stack.env["REDIS_URL"])


def _queued(broker: redis.Redis, queue: str = "default") -> int:
    """Messages waiting on a queue (kombu keeps one list per priority: ``default``,
    ``default\\x06\\x163``, ...)."""
    return sum(broker.llen(key) for key in broker.keys(f"{queue}*") if broker.type(key) == b"list")


def _redeliver_unacked(stack) -> int:
    """Do what Redis does once the visibility timeout passes: put every unacknowledged
    message back on its queue (kombu keeps them in the ``unacked`` hash)."""
    broker = _broker(stack)
    restored = 0
    for tag, raw in broker.hgetall("unacked").items():
        message, _exchange, routing_key = json.loads(raw)
        broker.lpush(routing_key, json.dumps(message))
        broker.hdel("unacked", tag)
        broker.zrem("unacked_index", tag)
        restored += 1
    return restored


def test_a_worker_killed_mid_purge_ends_the_run_and_a_retry_finishes_the_work(stack):
    log = _reset(stack)
    worker = stack.start_worker("default", name="doomed")
    client = DagsterClient(stack.url, timeout=30)
    run_id = client.launch_task(SLOW_PURGE, trigger="fault-test", extra_args=PURGE_ARGS)

    # Kill once two batches are committed: the third is open, mid-transaction.
    wait_until(lambda: sum(purge_log(log).values()) >= 2 * BATCH, 90, what="two batches")
    worker.kill(signal.SIGKILL)
    clock = Clock()
    worker.popen.wait(timeout=10)
    time.sleep(1)  # Postgres notices the dead client and rolls its batch back
    at_kill = submission_state(stack)
    committed_at_kill = sum(purge_log(log).values())
    survivor = stack.start_worker("default", name="survivor")

    # The killed run is failed by run monitoring and retried once as a new run.
    original, retry = wait_run_and_retry(stack, run_id, timeout=MAX_RUNTIME_S + 120)
    resolved_after = clock()
    reason = run_failure_message(stack, run_id)

    # Then the killed step's message comes back (as after the visibility timeout), to a
    # worker started since: the revoke the terminated run broadcast reached only the workers
    # alive at the time and lives in their memory, so only the op guard stands in the way.
    survivor.stop()
    reborn = stack.start_worker("default", name="reborn")
    restored = _redeliver_unacked(stack)
    wait_until(
        lambda: any("already" in m for m in step_failure_messages(stack, run_id)),
        60,
        what="the redelivered step to be refused",
    )
    refusals = [m for m in step_failure_messages(stack, run_id) if "already" in m]
    final = submission_state(stack)
    commits = purge_log(log)
    doubles = sum(n - 1 for n in commits.values() if n > 1)
    lost = (FRESH - final["fresh_intact"]) + (EXPIRED + FRESH - final["total"])
    figures.fault(
        "Celery worker SIGKILLed mid-batch (slow purge)",
        survived=retry.status == dg.DagsterRunStatus.SUCCESS and final["purged"] == EXPIRED,
        outcome=f"run FAILURE ({reason.split('.')[0]}), retry {retry.status.value}; "
        f"redelivered step refused",
        guards=["acks late", "run monitoring", "run retries", "op guard", "batch transactions"],
        runs_stuck=stuck_runs(stack, SLOW_PURGE),
        rows_lost=lost,
        rows_double=doubles,
        seconds=resolved_after,
    )

    assert original.status == dg.DagsterRunStatus.FAILURE
    assert "Exceeded maximum runtime" in reason, reason
    assert retry.status == dg.DagsterRunStatus.SUCCESS, run_failure_message(stack, retry.run_id)
    # Every batch was applied whole or not at all: the killed one left nothing half done.
    assert at_kill["purged"] % BATCH == 0 and at_kill["purged"] >= committed_at_kill, at_kill
    assert at_kill["half_marked"] == at_kill["half_cleared"] == 0, at_kill
    # Nothing lost, nothing purged twice, nothing purged that should stay.
    assert final == purged_exactly_once(EXPIRED, FRESH)
    assert sum(commits.values()) == EXPIRED and doubles == 0
    assert restored == 1 and refusals, restored
    assert f"is already {dg.DagsterRunStatus.FAILURE.value}" in refusals[0]
    assert worker.popen.returncode == -signal.SIGKILL
    assert reborn.alive()
    reborn.stop()


def test_a_step_queued_before_its_run_was_terminated_is_refused_by_the_op_guard(stack):
    """dagster-io/dagster#23222: terminating a run does not remove its queued Celery step.

    The terminated run's executor revokes the step, but no worker is alive to hear it, and
    it then waits for the step's result: the run stays CANCELING (run monitoring would mark
    it CANCELED after ``cancel_timeout_seconds``). The worker started afterwards takes the
    step; the op guard refuses it, the executor gets its result and the run ends CANCELED.
    """
    log = _reset(stack)
    broker = _broker(stack)
    runs_before = len(runs_of(stack, SLOW_PURGE))
    client = DagsterClient(stack.url, timeout=30)
    before = submission_state(stack)
    run_id = client.launch_task(SLOW_PURGE, trigger="fault-test", extra_args=PURGE_ARGS)
    # No worker consumes "default": the step waits in Redis while the run is STARTED.
    wait_until(lambda: _queued(broker) >= 1, 90, what="the step queued in Redis")
    clock = Clock()
    data = client.execute(
        "mutation($runId: String!) { terminateRun(runId: $runId) { __typename "
        "... on TerminateRunFailure { message } ... on PythonError { message } } }",
        {"runId": run_id},
    )
    assert data["terminateRun"]["__typename"] == "TerminateRunSuccess", data
    wait_until(
        lambda: (
            run_record(stack, run_id).dagster_run.status
            in (dg.DagsterRunStatus.CANCELING, dg.DagsterRunStatus.CANCELED)
        ),
        30,
        what="the run to be cancelling",
    )
    still_queued = _queued(broker)

    worker = stack.start_worker("default", name="late")
    wait_until(lambda: run_record(stack, run_id).dagster_run.is_finished, 90, what="the run")
    record = run_record(stack, run_id)
    wait_until(lambda: _queued(broker) == 0, 30, what="the late step to be consumed")
    refusals = [m for m in step_failure_messages(stack, run_id) if "already" in m]
    after = submission_state(stack)
    figures.fault(
        "Run terminated while its step waited in Redis; worker started afterwards",
        survived=bool(refusals) and after == before,
        outcome=f"run {record.dagster_run.status.value}; late step refused: "
        + (refusals[0].split(";")[0] if refusals else "NOT refused"),
        guards=["op guard", "run monitoring (cancel timeout)"],
        runs_stuck=stuck_runs(stack, SLOW_PURGE),
        rows_lost=abs(after["purged"] - before["purged"]),
        rows_double=0,
        seconds=clock(),
    )
    assert still_queued == 1, "terminating the run removed the queued step after all"
    assert record.dagster_run.status == dg.DagsterRunStatus.CANCELED
    assert refusals and "is already CANCEL" in refusals[0], step_failure_messages(stack, run_id)
    assert after == before and sum(purge_log(log).values()) == 0
    assert len(runs_of(stack, SLOW_PURGE)) == runs_before + 1, "a terminated run was retried"
    worker.stop()
