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


def _purge_concurrently(stack, command: str, *args: str) -> list[subprocess.CompletedProcess]:
    argv = [sys.executable, "manage.py", command, *args]
    procs = [
        subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env=stack.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    return [
        subprocess.CompletedProcess(argv, p.returncode, out, err)
        for p, (out, err) in zip(procs, outputs, strict=True)
    ]


@pytest.mark.parametrize(
    ("command", "rows", "args"),
    [
        ("purge_expired_submissions", 3000, ("--batch-size", "20", "--max-batches", "0")),
        (
            "slow_purge_submissions",
            200,
            ("--batch-size", "5", "--max-batches", "0", "--pause", "0.01"),
        ),  # noqa: E501
    ],
    ids=["production", "logged"],
)
def test_two_raw_purges_in_parallel_split_the_rows_without_errors(stack, command, rows, args):
    """FOR UPDATE SKIP LOCKED: each claims rows the other has not; the counts add up."""
    seed_submissions(stack, rows, 50)
    log = Path(stack.env[PURGE_LOG_ENV])
    log.write_text("")
    clock = Clock()
    results = _purge_concurrently(stack, command, *args)
    summaries = [parse_summary(r.stdout) for r in results]
    state = submission_state(stack)
    purged = [s["counts"]["purged"] if s else None for s in summaries]
    commits = purge_log(log)
    doubles = sum(n - 1 for n in commits.values() if n > 1)
    if command == "slow_purge_submissions":
        doubles += abs(sum(commits.values()) - rows)
    else:  # a row purged twice would make the two counts add up to more than there were
        doubles += max(0, sum(p or 0 for p in purged) - rows)
    figures.fault(
        f"Two `{command}` processes at once on Postgres ({rows} due rows)",
        survived=all(r.returncode == 0 for r in results) and state["purged"] == rows,
        outcome=f"both exit 0, purged {purged} = {sum(p or 0 for p in purged)}",
        guards=["batch transactions", "FOR UPDATE SKIP LOCKED"],
        rows_lost=50 - state["fresh_intact"],
        rows_double=doubles,
        seconds=clock(),
    )
    assert [r.returncode for r in results] == [0, 0], [r.stderr[-2000:] for r in results]
    assert sum(purged) == rows == state["purged"], (purged, state)
    assert state["fresh_intact"] == 50 and state["half_marked"] == state["half_cleared"] == 0
    assert doubles == 0
    assert all(p > 0 for p in purged), f"one purge did all the work, no race happened: {purged}"
