"""Overlapping triggers: two launches of one job at once, two purges racing on Postgres."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest

from tests.faults import figures
from tests.faults.helpers import (
    PURGE_LOG_ENV,
    SLOW_PURGE,
    Clock,
    purge_log,
    purged_count,
    seed_submissions,
    stuck_runs,
    submission_state,
)
from tests.support.dagster_stack import REPO_ROOT
from tests.support.services import wait_until
from validibot.core.maintenance import parse_summary
from validibot.operations.dagster_client import DagsterClient
from validibot_ops.tags import TRIGGER_TAG

pytestmark = [pytest.mark.services, pytest.mark.timeout(300)]

EXPIRED, FRESH = 30, 10
CASE_TAG = "validibot-test/case"


def _runs(stack, case: str) -> list[dg.RunRecord]:
    with stack.instance() as instance:
        return list(instance.get_run_records(dg.RunsFilter(tags={CASE_TAG: case})))


SLOW_ARGS = ["--batch-size", "5", "--max-batches", "0", "--pause", "0.1"]


def test_graphql_and_cli_launches_at_once_never_run_together(stack):
    seed_submissions(stack, EXPIRED, FRESH)
    log = Path(stack.env[PURGE_LOG_ENV])
    log.write_text("")
    worker = stack.start_worker("default", name="overlap")
    client = DagsterClient(stack.url, timeout=30)
    case = uuid.uuid4().hex  # tells this test's two runs from earlier runs of the task
    config = json.dumps({"ops": {SLOW_PURGE: {"config": {"extra_args": SLOW_ARGS}}}})
    cli = [
        "dagster", "job", "launch", "-w", str(REPO_ROOT / "workspace.local.yaml"),
        "-j", SLOW_PURGE, "--config-json", config,
        "--tags", json.dumps({TRIGGER_TAG: "cli", CASE_TAG: case}),
    ]  # fmt: skip
    launched: dict[str, object] = {}
    thread = threading.Thread(target=lambda: launched.update(cli=stack.run_cli(cli, timeout=120)))
    clock = Clock()
    thread.start()
    # The GraphQL launch goes out as soon as the CLI's run exists: `dagster job launch` loads
    # the whole code location first, long enough for a run launched beside it to finish.
    wait_until(
        lambda: any(r.dagster_run.tags.get(TRIGGER_TAG) == "cli" for r in _runs(stack, case)),
        120,
        what="the CLI's run",
    )
    launched["graphql"] = client.launch_task(
        SLOW_PURGE, trigger="graphql", extra_args=SLOW_ARGS, tags={CASE_TAG: case}
    )
    thread.join(timeout=130)
    assert launched["cli"].returncode == 0, launched["cli"].stderr[-2000:]

    # Watch both runs: never two STARTED at once, and one waits QUEUED while the other runs.
    seen_concurrent, seen_queued_behind = 0, False
    while len(records := _runs(stack, case)) < 2 or not all(
        r.dagster_run.is_finished for r in records
    ):
        statuses = [r.dagster_run.status for r in records]
        seen_concurrent = max(seen_concurrent, statuses.count(dg.DagsterRunStatus.STARTED))
        seen_queued_behind |= (
            dg.DagsterRunStatus.STARTED in statuses and dg.DagsterRunStatus.QUEUED in statuses
        )
        assert clock() < 150, f"runs not finished after 150 s: {statuses}"
        time.sleep(0.2)
    first, second = sorted(records, key=lambda r: r.start_time)
    purged = [purged_count(stack, r.dagster_run.run_id) for r in (first, second)]
    state = submission_state(stack)
    commits = purge_log(log)
    doubles = sum(n - 1 for n in commits.values() if n > 1)
    figures.fault(
        "Same job launched at once via GraphQL and `dagster job launch`",
        survived=first.end_time <= second.start_time and state["purged"] == EXPIRED,
        outcome=f"one ran, the other waited QUEUED (tag limit) then ran; purged {purged}",
        guards=["tag concurrency limit", "batch transactions"],
        runs_stuck=stuck_runs(stack, SLOW_PURGE),
        rows_lost=FRESH - state["fresh_intact"],
        rows_double=doubles,
        seconds=clock(),
    )
    assert {r.dagster_run.tags[TRIGGER_TAG] for r in records} == {"cli", "graphql"}
    assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records)
    assert seen_concurrent == 1 and seen_queued_behind
    assert first.end_time <= second.start_time, "two runs of one task overlapped"
    assert sorted(purged) == [0, EXPIRED] and doubles == 0
    assert state["purged"] == EXPIRED and state["fresh_intact"] == FRESH
    worker.stop()


def _start(stack, command: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", command, *args],
        cwd=REPO_ROOT,
        env={**stack.env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _first_batch(proc: subprocess.Popen, clock: Clock) -> str:
    """Read ``proc``'s stdout up to its first batch line (its lock is held by then)."""
    seen = ""
    while "batch 1:" not in seen:
        line = proc.stdout.readline()
        assert line and clock() < 60, f"no first batch: {seen[-2000:]}"
        seen += line
    return seen


def _finish(proc: subprocess.Popen, seen: str = "") -> tuple[int, dict, str]:
    out, err = proc.communicate(timeout=240)
    return proc.returncode, parse_summary(seen + out), err


SLOW = ("--batch-size", "5", "--max-batches", "0")


def _slow_purge_running(stack, rows: int, pause: str) -> tuple[Path, Clock, subprocess.Popen, str]:
    """Seed ``rows`` due rows (and 50 fresh), start the logged slow purge, wait for its first
    batch; return the purge log, the clock, the process and what it printed so far."""
    seed_submissions(stack, rows, 50)
    log = Path(stack.env[PURGE_LOG_ENV])
    log.write_text("")
    clock = Clock()
    slow = _start(stack, "slow_purge_submissions", *SLOW, "--pause", pause)
    return log, clock, slow, _first_batch(slow, clock)


def test_a_second_execution_of_one_purge_is_busy_and_changes_nothing(stack):
    """The task's lock (a Postgres advisory lock): whoever starts it, one execution at a time."""
    rows = 200
    log, clock, first, seen = _slow_purge_running(stack, rows, "0.05")
    second = _start(stack, "slow_purge_submissions", *SLOW, "--pause", "0.05")
    second_code, second_summary, second_err = _finish(second)
    first_code, first_summary, first_err = _finish(first, seen)
    state = submission_state(stack)
    commits = purge_log(log)
    doubles = sum(n - 1 for n in commits.values() if n > 1) + abs(sum(commits.values()) - rows)
    figures.fault(
        "A second `slow_purge_submissions` started while the first runs (Postgres)",
        survived=second_summary["status"] == "busy" and state["purged"] == rows,
        outcome=f"second: exit {second_code}, {second_summary['status']}, purged "
        f"{second_summary['counts']['purged']}; first purged {first_summary['counts']['purged']}",
        guards=["per-task lock"],
        rows_lost=50 - state["fresh_intact"],
        rows_double=doubles,
        seconds=clock(),
    )
    assert second_code == 0, second_err[-2000:]
    assert second_summary["status"] == "busy" and second_summary["counts"]["purged"] == 0
    assert first_code == 0, first_err[-2000:]
    assert first_summary["status"] == "completed" and first_summary["counts"]["purged"] == rows
    assert state["purged"] == rows and state["fresh_intact"] == 50 and doubles == 0


def test_two_purges_of_the_same_rows_in_parallel_split_them_without_errors(stack):
    """Two tasks over the same rows (the production purge and the test's slow one) may run at
    once: FOR UPDATE SKIP LOCKED makes each claim rows the other has not; the counts add up."""
    rows = 3000
    log, clock, slow, seen = _slow_purge_running(stack, rows, "0.02")
    fast = _start(stack, "purge_expired_submissions", "--batch-size", "20", "--max-batches", "0")
    results = [_finish(fast), _finish(slow, seen)]
    state = submission_state(stack)
    purged = [summary["counts"]["purged"] if summary else None for _, summary, _ in results]
    commits = purge_log(log)  # the slow purge's committed deletions
    doubles = sum(n - 1 for n in commits.values() if n > 1)
    doubles += abs(len(commits) - (purged[1] or 0))
    doubles += max(0, sum(p or 0 for p in purged) - rows)
    figures.fault(
        f"`purge_expired_submissions` and a slow purge of the same {rows} rows at once (Postgres)",
        survived=all(code == 0 for code, _, _ in results) and state["purged"] == rows,
        outcome=f"both exit 0, purged {purged} = {sum(p or 0 for p in purged)}",
        guards=["batch transactions", "FOR UPDATE SKIP LOCKED"],
        rows_lost=50 - state["fresh_intact"],
        rows_double=doubles,
        seconds=clock(),
    )
    assert [code for code, _, _ in results] == [0, 0], [err[-2000:] for _, _, err in results]
    assert sum(purged) == rows == state["purged"], (purged, state)
    assert state["fresh_intact"] == 50 and state["half_marked"] == state["half_cleared"] == 0
    assert doubles == 0
    assert all(p > 0 for p in purged), f"one purge did all the work, no race happened: {purged}"
