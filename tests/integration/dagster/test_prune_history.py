"""`prune_dagster_history` against a real Dagster instance and webserver, SQLite and Postgres.

Old runs are written into the instance by the test (tests/support/dagster_history.py: the same
events and metadata our op records, back-dated), plus one real `dagster job execute` run; the
command under test reaches them only over the webserver's GraphQL API, as in production.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.dagster_history import backdate, event_rows, record_run
from tests.support.dagster_stack import REPO_ROOT, DagsterStack
from tests.support.services import wait_until
from validibot_ops.history_files import sweep_deleted_run_files

pytestmark = [pytest.mark.services, pytest.mark.timeout(900)]

NOW = datetime.now(UTC)
INSTANCES = {
    "sqlite": REPO_ROOT / "dagster.yaml",
    "postgres": REPO_ROOT / "deploy" / "dagster.yaml",
}


@pytest.fixture(scope="module", params=sorted(INSTANCES))
def stack(request, postgres_service, tmp_path_factory):
    """A stack whose Dagster storage is SQLite (root dagster.yaml) or Postgres (deploy/)."""
    root = tmp_path_factory.mktemp(f"prune-{request.param}")
    with DagsterStack.create(
        root, executor="in_process", instance_yaml=INSTANCES[request.param]
    ) as st:
        st.kind = request.param
        _proc, st.url = st.start_webserver()
        yield st


def prune(stack, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    result = stack.run_cli(
        [sys.executable, "manage.py", "prune_dagster_history", "--url", stack.url, *args],
        timeout=300,
    )
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines, result.stderr
    return result, json.loads(lines[-1])


def history(stack, task: str) -> dict[date, dict]:
    rows = stack.sql(
        "SELECT day, runs, failures, canceled, dry_runs, rows_affected, counts "
        "FROM operations_taskhistoryday WHERE task = %s",
        task,
    )
    keys = ("runs", "failures", "canceled", "dry_runs", "rows_affected", "counts")
    return {row[0]: dict(zip(keys, row[1:], strict=True)) for row in rows}


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def existing(stack, run_ids) -> set[str]:
    with stack.instance() as instance:
        return {run_id for run_id in run_ids if instance.has_run(run_id)}


def test_prune_rolls_up_then_deletes_old_finished_runs_only(stack):
    a, b = f"prune_a_{uuid.uuid4().hex[:6]}", f"prune_b_{uuid.uuid4().hex[:6]}"
    with stack.instance() as instance:
        old_a = [
            record_run(instance, task=a, created=ago(100), counts={"deleted": 2, "batches": 1}),
            record_run(instance, task=a, created=ago(100.1), counts={"deleted": 3, "batches": 1}),
            record_run(instance, task=a, created=ago(100.2), counts={"deleted": 9}, dry_run=True),
            record_run(instance, task=a, created=ago(101), counts={"deleted": 4}),
            record_run(instance, task=a, created=ago(101), status="FAILURE", counts={"deleted": 1}),
            record_run(instance, task=a, created=ago(101), status="CANCELED"),
        ]
        recent_a = record_run(instance, task=a, created=ago(1), counts={"deleted": 7})
        # b has only old runs: its latest (finished, successful) one is kept, and so is a run
        # still in progress, however old.
        in_progress_b = record_run(instance, task=b, created=ago(130), status="STARTED")
        old_b = record_run(instance, task=b, created=ago(125), counts={"deleted": 5})
        latest_b = record_run(instance, task=b, created=ago(120), counts={"deleted": 6})
        assert event_rows(instance, old_a[0]) == 15
    everything = [*old_a, recent_a, in_progress_b, old_b, latest_b]

    dry, summary = prune(stack, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert summary["status"] == "completed" and summary["dry_run"] is True
    assert summary["counts"]["deleted"] >= 7 and summary["counts"]["rolled_up"] == 0
    assert existing(stack, everything) == set(everything), "a dry run deletes nothing"
    assert history(stack, a) == {} and history(stack, b) == {}

    real, summary = prune(stack, "--batch-size", "3")
    assert real.returncode == 0, real.stderr
    assert summary["status"] == "completed" and summary["dry_run"] is False
    assert summary["counts"]["deleted"] >= 7 and summary["counts"]["events"] >= 7 * 15
    assert existing(stack, everything) == {recent_a, in_progress_b, latest_b}
    with stack.instance() as instance:
        assert [event_rows(instance, run_id) for run_id in [*old_a, old_b]] == [0] * 7
        assert event_rows(instance, latest_b) == 15

    day100, day101 = ago(100).date(), ago(101).date()
    assert set(history(stack, a)) <= {day100, day101, ago(100.2).date(), ago(100.1).date()}
    totals = _sum(history(stack, a).values())
    assert totals == {
        "runs": 5,  # 3 successes, 1 failure, 1 canceled; the dry run is counted apart
        "failures": 1,
        "canceled": 1,
        "dry_runs": 1,
        "rows_affected": 2 + 3 + 4 + 1,  # "batches" is not a row count
        "counts": {"deleted": 10},  # bookkeeping ("batches") is not kept
    }
    assert history(stack, b) == {
        ago(125).date(): {
            "runs": 1,
            "failures": 0,
            "canceled": 0,
            "dry_runs": 0,
            "rows_affected": 5,
            "counts": {"deleted": 5},
        }
    }
    assert stack.sql("SELECT count(*) FROM operations_rolleduprun")[0][0] == 0

    again, summary = prune(stack)
    assert again.returncode == 0, again.stderr
    assert summary["counts"]["deleted"] == 0 and summary["counts"]["rolled_up"] == 0
    assert _sum(history(stack, a).values()) == totals, "a second prune changes nothing"


def _sum(rows) -> dict:
    total = {"runs": 0, "failures": 0, "canceled": 0, "dry_runs": 0, "rows_affected": 0}
    counts: dict[str, int] = {}
    for row in rows:
        for key in total:
            total[key] += row[key]
        for name, value in row["counts"].items():
            counts[name] = counts.get(name, 0) + value
    return {**total, "counts": counts}


def test_a_real_run_is_rolled_up_from_the_metadata_our_op_recorded(stack):
    stack.manage("seed_demo_data", "--no-files")
    stack.run_cli(
        ["dagster", "job", "execute", "-m", "validibot_ops.definitions", "-j", "clear_sessions"],
        check=True,
    )
    with stack.instance() as instance:
        (record,) = instance.get_run_records(limit=1)
        real_run = record.dagster_run.run_id
        assert record.dagster_run.job_name == "clear_sessions"
        summary = _output_metadata(instance, real_run)
        backdate(instance, real_run, ago(95))
        # The real run is no longer the task's latest once a newer one exists.
        record_run(instance, task="clear_sessions", created=ago(0.5), counts={"deleted": 0})

    result, _ = prune(stack)
    assert result.returncode == 0, result.stderr
    assert not existing(stack, [real_run])
    day = history(stack, "clear_sessions")[ago(95).date()]
    assert day["runs"] == 1 and day["failures"] == 0
    assert day["counts"]["deleted"] == summary["deleted"]
    assert day["rows_affected"] == summary["deleted"]


def _output_metadata(instance, run_id: str) -> dict:
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is not None and event.event_type_value == "STEP_OUTPUT":
            return {k: v.value for k, v in event.step_output_data.metadata.items()}
    raise AssertionError(f"run {run_id} has no step output")


def test_a_rolled_up_run_left_by_a_killed_prune_is_deleted_but_not_counted_again(stack):
    """The state a kill between a batch's commit and its deletions leaves, made on purpose."""
    task = f"prune_c_{uuid.uuid4().hex[:6]}"
    with stack.instance() as instance:
        rolled = record_run(instance, task=task, created=ago(200), counts={"deleted": 4})
        fresh = record_run(instance, task=task, created=ago(200), counts={"deleted": 6})
        record_run(instance, task=task, created=ago(1))
    day = ago(200).date()
    stack.sql(
        "INSERT INTO operations_taskhistoryday "
        "(task, day, runs, failures, canceled, dry_runs, rows_affected, counts) "
        "VALUES (%s, %s, 1, 0, 0, 0, 4, %s)",
        task,
        day,
        json.dumps({"deleted": 4}),
    )
    stack.sql(
        "INSERT INTO operations_rolleduprun (run_id, task, rolled_up_at) VALUES (%s, %s, now())",
        rolled,
        task,
    )

    result, summary = prune(stack)
    assert result.returncode == 0, result.stderr
    assert not existing(stack, [rolled, fresh])
    assert history(stack, task)[day]["runs"] == 2
    assert history(stack, task)[day]["rows_affected"] == 10
    assert stack.sql("SELECT count(*) FROM operations_rolleduprun")[0][0] == 0


def test_killed_half_way_then_run_again_gives_exact_totals(stack):
    task = f"prune_k_{uuid.uuid4().hex[:6]}"
    with stack.instance() as instance:
        old = [
            record_run(instance, task=task, created=ago(150 + n), counts={"deleted": n})
            for n in range(1, 21)
        ]
        record_run(instance, task=task, created=ago(2))
    argv = [sys.executable, "manage.py", "prune_dagster_history", "--url", stack.url]
    killed = subprocess.Popen(  # noqa: S603
        [*argv, "--batch-size", "1"],
        cwd=REPO_ROOT,
        env=stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(
            lambda: _rolled_up(stack, task) >= 2 or killed.poll() is not None,
            240,
            what="the prune's second batch to commit",
        )
        assert killed.poll() is None, "the prune finished before it could be killed"
        killed.send_signal(signal.SIGKILL)
    finally:
        killed.wait(timeout=30)
        if killed.stdout:
            killed.stdout.close()
    assert 0 < len(existing(stack, old)) < len(old), "killed half-way"

    result, summary = prune(stack)
    assert result.returncode == 0, result.stderr
    assert existing(stack, old) == set()
    totals = _sum(history(stack, task).values())
    assert (totals["runs"], totals["rows_affected"]) == (20, sum(range(1, 21)))
    assert stack.sql("SELECT count(*) FROM operations_rolleduprun")[0][0] == 0


def _rolled_up(stack, task: str) -> int:
    return stack.sql(
        "SELECT coalesce(sum(runs), 0) FROM operations_taskhistoryday WHERE task = %s", task
    )[0][0]


def test_the_files_deleted_runs_leave_are_swept_on_the_dagster_side(stack):
    task = f"prune_f_{uuid.uuid4().hex[:6]}"
    with stack.instance() as instance:
        old = record_run(instance, task=task, created=ago(100))
        record_run(instance, task=task, created=ago(1))
        logs = Path(instance.compute_log_manager._base_dir) / old / "compute_logs"  # noqa: SLF001
        logs.mkdir(parents=True)
        (logs / f"{task}.out").write_text("captured stdout")
        shard = Path(getattr(instance.event_log_storage, "_base_dir", "/nonexistent")) / f"{old}.db"
        assert shard.exists() == (stack.kind == "sqlite")

    result, _ = prune(stack)
    assert result.returncode == 0, result.stderr
    with stack.instance() as instance:
        assert logs.exists(), "deleteRun leaves compute logs"
        swept = sweep_deleted_run_files(instance)
        assert swept.compute_logs >= 1 and not logs.parent.exists()
        assert not shard.exists()
        assert (swept.shards >= 1) == (stack.kind == "sqlite")
        assert sweep_deleted_run_files(instance).compute_logs == 0, "a second sweep finds nothing"
