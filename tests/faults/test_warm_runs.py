"""Warm runs (the default run mode): each run executes inside a prefork pool process of a
``validibot-ops worker``, sent there by ``validibot_ops.launcher.ValidibotRunLauncher``.

A stack of its own (private Redis, the daemon, the webserver) with the repository's
``dagster.yaml`` and a faster clock: run monitoring polls every 5 s and the heartbeat bound
is 20 s instead of 120 s, so a dead worker is noticed in seconds, not minutes.
"""

from __future__ import annotations

import base64
import json
import signal
from pathlib import Path

import dagster as dg
import psutil
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
    running_fault_stack,
    runs_of,
    seed_submissions,
    stuck_runs,
    submission_state,
    wait_run_and_retry,
    write_fault_instance_yaml,
)
from tests.support.services import wait_until
from validibot.operations.dagster_client import DagsterClient

pytestmark = [pytest.mark.services, pytest.mark.postgres, pytest.mark.timeout(600)]

EXPIRED, FRESH, BATCH = 60, 20, 5
PURGE_ARGS = ["--batch-size", str(BATCH), "--max-batches", "0", "--pause", "0.2"]
HEARTBEAT_S = 20


def _warm_instance_yaml(root: Path) -> Path:
    path = write_fault_instance_yaml(root)
    text = path.read_text()
    old = "    heartbeat_timeout_seconds: 120\n"
    assert old in text, "dagster.yaml no longer sets heartbeat_timeout_seconds"
    path.write_text(text.replace(old, f"    heartbeat_timeout_seconds: {HEARTBEAT_S}\n"))
    return path


@pytest.fixture(scope="module")
def warm_stack(postgres_service, tmp_path_factory):
    root = tmp_path_factory.mktemp("warm-stack")
    with running_fault_stack(
        root, executor="warm", instance_yaml=_warm_instance_yaml(root)
    ) as stack:
        yield stack


@pytest.fixture
def stack(warm_stack):
    yield warm_stack
    for proc in warm_stack.processes:
        if proc.name.startswith("worker-") and proc.alive():
            proc.stop()


def _run_pid(stack, run_id: str) -> int:
    """The pid Dagster recorded for the process that executed the run."""
    with stack.instance() as instance:
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
            if (entry.message or "").startswith("Started process for run (pid: "):
                return int(entry.message.split("pid: ")[1].rstrip(")."))
    raise AssertionError(f"run {run_id} recorded no process")


def _wait_finished(stack, run_id: str, timeout: float = 120) -> dg.DagsterRun:
    wait_until(lambda: run_record(stack, run_id).dagster_run.is_finished, timeout, what=run_id)
    return run_record(stack, run_id).dagster_run


def _redeliver_unacked(stack, run_id: str, queue: str = "default") -> int:
    """What Redis does once the visibility timeout passes, for ``run_id``'s message: an
    unacknowledged message (kombu's ``unacked`` hash) goes back onto its queue.

    Only that run's message moves: another run's message may be unacknowledged for a moment
    (a retry still acknowledging), and redelivering it would prove nothing."""
    broker = redis.Redis.from_url(stack.env["REDIS_URL"])
    restored = 0
    for tag, raw in broker.hgetall("unacked").items():
        message = json.loads(raw)[0]
        if run_id not in _message_text(message):
            continue
        broker.lpush(queue, json.dumps(message))
        broker.hdel("unacked", tag)
        broker.zrem("unacked_index", tag)
        restored += 1
    return restored


def _message_text(message: dict) -> str:
    """A kombu message's headers and decoded body as text (the body is base64 on Redis)."""
    body = message.get("body", "")
    if message.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body).decode("utf-8", "replace")
    return json.dumps(message.get("headers", {})) + str(body)


SURVIVOR = "survivor-warm"


def _events(stack, run_id: str) -> list:
    with stack.instance() as instance:
        return list(instance.all_logs(run_id))


def _written_by(events: list, worker, name: str) -> list[str]:
    """The events ``worker`` wrote: from one of its processes (the pid Dagster records on
    execution events), or naming it (the engine event a warm run starts with has no pid)."""
    tree = {worker.pid, *(p.pid for p in psutil.Process(worker.pid).children(recursive=True))}
    return [
        f"{e.dagster_event.event_type_value}: {e.message}"
        for e in events
        if e.is_dagster_event and (e.dagster_event.pid in tree or name in (e.message or ""))
    ]


def _describe(events: list) -> str:
    return "\n".join(
        f"{e.dagster_event.event_type_value if e.is_dagster_event else 'log'} "
        f"(pid {e.dagster_event.pid if e.is_dagster_event else '-'}): {e.message}"
        for e in events
    )


def _reset(stack) -> Path:
    seed_submissions(stack, EXPIRED, FRESH)
    log = Path(stack.env[PURGE_LOG_ENV])
    log.write_text("")
    return log


def test_warm_runs_execute_inside_the_workers_pool_process(stack):
    """No ``dagster api execute_run`` process per run: both runs executed in one pool
    process of the worker, which stayed alive between them."""
    seed_submissions(stack, expired=3, fresh=1)
    worker = stack.start_worker("default", name="warm")
    client = DagsterClient(stack.url, timeout=30)
    quick = ["--pause", "0"]
    first = client.launch_task(SLOW_PURGE, trigger="fault-test", extra_args=quick)
    assert _wait_finished(stack, first).status == dg.DagsterRunStatus.SUCCESS
    second = client.launch_task(SLOW_PURGE, trigger="fault-test", extra_args=quick)
    assert _wait_finished(stack, second).status == dg.DagsterRunStatus.SUCCESS
    assert submission_state(stack)["purged"] == 3

    pool = {p.pid for p in psutil.Process(worker.pid).children()}
    assert _run_pid(stack, first) == _run_pid(stack, second)
    assert _run_pid(stack, first) in pool, (_run_pid(stack, first), pool)
    with stack.instance() as instance:
        run = instance.get_run_by_id(first)
    assert run.tags.get("dagster-celery/task_id"), run.tags


def test_terminate_mid_purge_ends_canceled_within_a_batch_and_is_not_retried(stack):
    log = _reset(stack)
    stack.start_worker("default", name="terminated")
    client = DagsterClient(stack.url, timeout=30)
    runs_before = len(runs_of(stack, SLOW_PURGE))
    run_id = client.launch_task(SLOW_PURGE, trigger="fault-test", extra_args=PURGE_ARGS)
    wait_until(lambda: sum(purge_log(log).values()) >= 2 * BATCH, 90, what="two batches")
    data = client.execute(
        "mutation($runId: String!) { terminateRun(runId: $runId) { __typename } }",
        {"runId": run_id},
    )
    clock = Clock()
    committed_at_terminate = sum(purge_log(log).values())
    assert data["terminateRun"]["__typename"] == "TerminateRunSuccess", data
    run = _wait_finished(stack, run_id, timeout=60)
    took = clock()
    final = submission_state(stack)
    committed = sum(purge_log(log).values())
    figures.fault(
        "Warm run terminated mid-purge (GraphQL terminateRun)",
        survived=run.status == dg.DagsterRunStatus.CANCELED
        and committed - committed_at_terminate <= BATCH,
        outcome=f"run {run.status.value}; {committed} of {EXPIRED} rows purged, "
        f"{committed - committed_at_terminate} after the terminate; no retry",
        guards=["CANCELING before revoke", "stop check between batches"],
        runs_stuck=stuck_runs(stack, SLOW_PURGE),
        rows_lost=0,
        rows_double=sum(n - 1 for n in purge_log(log).values() if n > 1),
        seconds=took,
    )
    assert run.status == dg.DagsterRunStatus.CANCELED
    # The batch open at the terminate finishes; no other starts.
    assert committed - committed_at_terminate <= BATCH, (committed, committed_at_terminate)
    assert final["half_marked"] == final["half_cleared"] == 0, final
    assert final["purged"] == committed < EXPIRED
    wait_until(lambda: stuck_runs(stack, SLOW_PURGE) == 0, 30, what="no run in flight")
    assert len(runs_of(stack, SLOW_PURGE)) == runs_before + 1, "a terminated run was retried"


def test_a_warm_worker_killed_mid_purge_is_noticed_by_its_heartbeat_and_retried(stack):
    log = _reset(stack)
    worker = stack.start_worker("default", name="doomed-warm")
    client = DagsterClient(stack.url, timeout=30)
    run_id = client.launch_task(SLOW_PURGE, trigger="fault-test", extra_args=PURGE_ARGS)
    wait_until(lambda: sum(purge_log(log).values()) >= 2 * BATCH, 90, what="two batches")
    # The whole worker dies at once (host or container lost): leader and pool processes.
    pool = psutil.Process(worker.pid).children(recursive=True)
    worker.kill(signal.SIGKILL)
    for proc in pool:
        proc.kill()
    clock = Clock()
    worker.popen.wait(timeout=10)
    survivor = stack.start_worker("default", name=SURVIVOR)

    # Run monitoring sees the heartbeat expire and fails the run; run retries start it again.
    original, retry = wait_run_and_retry(stack, run_id, timeout=HEARTBEAT_S + 180)
    resolved = clock()
    reason = run_failure_message(stack, run_id)
    final = submission_state(stack)
    commits = purge_log(log)
    doubles = sum(n - 1 for n in commits.values() if n > 1)
    figures.fault(
        "Warm worker SIGKILLed mid-batch (slow purge)",
        survived=retry.status == dg.DagsterRunStatus.SUCCESS and final["purged"] == EXPIRED,
        outcome=f"run FAILURE (no heartbeat for {HEARTBEAT_S} s), retry {retry.status.value}",
        guards=["run heartbeat", "run monitoring", "run retries", "batch transactions"],
        runs_stuck=stuck_runs(stack, SLOW_PURGE),
        rows_lost=(FRESH - final["fresh_intact"]) + (EXPIRED + FRESH - final["total"]),
        rows_double=doubles,
        seconds=resolved,
    )
    assert original.status == dg.DagsterRunStatus.FAILURE
    assert "no heartbeat" in reason, reason
    assert retry.status == dg.DagsterRunStatus.SUCCESS, run_failure_message(stack, retry.run_id)
    assert final == purged_exactly_once(EXPIRED, FRESH)
    assert sum(commits.values()) == EXPIRED and doubles == 0

    # The killed run's task comes back (as Redis does after the visibility timeout): the
    # worker refuses it without writing a single event into the finished run. (Events are
    # told apart by the pid Dagster records on each: one CI run saw a 17th event appear in
    # that window, whose writer the message below now names.)
    before = _events(stack, run_id)
    assert _redeliver_unacked(stack, run_id) == 1
    wait_until(lambda: f"refusing run {run_id}" in survivor.log(), 60, what="the refusal")
    new = _events(stack, run_id)[len(before) :]
    assert _written_by(new, survivor, SURVIVOR) == [], _describe(new)
    assert run_record(stack, run_id).dagster_run.status == dg.DagsterRunStatus.FAILURE


def test_a_worker_started_with_an_unknown_run_mode_fails_clearly(stack):
    result = stack.run_cli(
        ["validibot-ops", "worker", "--queue", "default"],
        timeout=60,
        env={"VALIDIBOT_RUN_MODE": "lukewarm"},
    )
    figures.bad_input(
        "`VALIDIBOT_RUN_MODE=lukewarm validibot-ops worker`",
        rejected=result.returncode == 2,
        error=f"exit {result.returncode}: {result.stderr.strip()[-200:]}",
    )
    assert result.returncode == 2
    assert "VALIDIBOT_RUN_MODE='lukewarm'" in result.stderr
    assert "warm or celery-executor" in result.stderr


def test_a_warm_worker_refuses_the_solo_pool(stack):
    result = stack.run_cli(
        ["validibot-ops", "worker", "--queue", "default", "--pool", "solo"], timeout=60
    )
    figures.bad_input(
        "`validibot-ops worker --pool solo` in warm mode",
        rejected=result.returncode == 2,
        error=f"exit {result.returncode}: {result.stderr.strip()[-200:]}",
    )
    assert result.returncode == 2
    assert "prefork" in result.stderr
