"""What the fault tests share: the instance and overrides they run with, seeding, counting."""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from tests.support.dagster_stack import REPO_ROOT, DagsterStack
from tests.support.services import wait_until
from validibot.tasks.registry import BACKEND_DAGSTER, BUILTIN_TASKS
from validibot_ops.tags import TASK_TAG

FAULT_TASK_MODULE = "tests.support.testapp.fault_tasks"
PURGE_LOG_ENV = "VALIDIBOT_TEST_PURGE_LOG"
SLOW_PURGE = "test_slow_purge"

# Run monitoring as in production except its clock: the daemon checks every 5 s instead of
# 30 s and gives a run 60 s to start instead of 180 s, so a fault is detected within seconds
# of the limit that triggers it. Everything else (run retries, tag limits) is the repo's file.
MONITORING_EDITS = {
    "  start_timeout_seconds: 180\n": "  start_timeout_seconds: 60\n",
    "  cancel_timeout_seconds: 180\n": "  cancel_timeout_seconds: 60\n",
    "  poll_interval_seconds: 30\n": "  poll_interval_seconds: 5\n",
}


def write_fault_instance_yaml(directory: Path) -> Path:
    """The production deploy/dagster.yaml with the faster run-monitoring clock above."""
    text = (REPO_ROOT / "deploy" / "dagster.yaml").read_text()
    for old, new in MONITORING_EDITS.items():
        assert old in text, f"dagster.yaml no longer has {old.strip()!r}; update MONITORING_EDITS"
        text = text.replace(old, new)
    path = directory / "dagster.yaml"
    path.write_text(text)
    return path


def write_overrides(directory: Path, keep: tuple[str, ...] = ()) -> Path:
    """An incident-overrides file pausing every built-in schedule but ``keep``: the daemon of
    a fault stack must not purge seeded rows on its hourly tick behind a test's back."""
    paused = {
        task.id: {"enabled": False, "reason": "fault suite", "author": "tests/faults"}
        for task in BUILTIN_TASKS
        if task.id not in keep and BACKEND_DAGSTER in task.backends
    }
    path = directory / "overrides.json"
    path.write_text(json.dumps(paused))
    return path


# -- rows ---------------------------------------------------------------------------------
def seed_submissions(stack: DagsterStack, expired: int, fresh: int) -> None:
    """Replace every submission with ``expired`` rows due for purging (``old-N``) and
    ``fresh`` rows that must survive (``new-N``); each has its own stored-file name, so a
    purge can be traced per row."""
    stack.sql("truncate submissions_submission restart identity cascade")
    for tag, count, expires_in_days in (("old", expired, -1), ("new", fresh, 30)):
        stack.sql(
            "insert into submissions_submission "
            "(name, content, file, retention_policy, created_at, expires_at) "
            "select %s || '-' || g, 'secret content', 'submissions/fault/' || %s || g || '.txt',"
            " '30d', now() - interval '31 days', now() + make_interval(days => %s)"
            " from generate_series(1, %s) g",
            tag,
            tag,
            expires_in_days,
            count,
        )


def submission_state(stack: DagsterStack) -> dict[str, int]:
    """Counts that reveal lost, half-purged or wrongly purged rows."""
    [row] = stack.sql(
        "select count(*),"
        " count(*) filter (where name like 'old-%%' and content_purged_at is not null),"
        " count(*) filter (where name like 'old-%%' and content_purged_at is null),"
        " count(*) filter (where name like 'new-%%' and content_purged_at is null"
        "   and content <> '' and file <> ''),"
        " count(*) filter (where content_purged_at is not null and (content <> '' or file <> '')),"
        " count(*) filter (where content_purged_at is null and (content = '' or file = ''))"
        " from submissions_submission"
    )
    keys = ("total", "purged", "unpurged", "fresh_intact", "half_marked", "half_cleared")
    return dict(zip(keys, row, strict=True))


def purge_log(path: Path) -> Counter:
    """File name -> how many committed purges deleted it (more than 1 means purged twice)."""
    if not path.exists():
        return Counter()
    return Counter(line.split()[1] for line in path.read_text().splitlines() if line.strip())


def table_counts(stack: DagsterStack) -> dict[str, int]:
    """Exact row count of every table in the stack's Django database."""
    tables = [
        name
        for (name,) in stack.sql(
            "select tablename from pg_tables where schemaname = 'public' order by tablename"
        )
    ]
    # Table names come from pg_tables, not from input.
    return {t: stack.sql(f'select count(*) from "{t}"')[0][0] for t in tables}  # noqa: S608


def rows_changed(before: dict[str, int], after: dict[str, int]) -> int:
    return sum(abs(after.get(t, 0) - n) for t, n in before.items())


# -- runs ---------------------------------------------------------------------------------
def runs_of(stack: DagsterStack, task_id: str) -> list[dg.RunRecord]:
    with stack.instance() as instance:
        return list(
            instance.get_run_records(dg.RunsFilter(tags={TASK_TAG: task_id}), ascending=True)
        )


def wait_runs_finished(
    stack: DagsterStack, task_id: str, count: int, timeout: float
) -> list[dg.RunRecord]:
    """Wait until at least ``count`` runs of the task exist and all are finished."""

    def done() -> bool:
        records = runs_of(stack, task_id)
        return len(records) >= count and all(r.dagster_run.is_finished for r in records)

    wait_until(done, timeout, interval=1, what=f"{count} finished run(s) of {task_id}")
    return runs_of(stack, task_id)


def run_record(stack: DagsterStack, run_id: str) -> dg.RunRecord:
    with stack.instance() as instance:
        return instance.get_run_record_by_id(run_id)


def wait_run_and_retry(stack: DagsterStack, run_id: str, timeout: float) -> tuple:
    """Wait until the run and its automatic retry (tag ``dagster/parent_run_id``) finished."""
    found: dict[str, dg.RunRecord] = {}

    def done() -> bool:
        with stack.instance() as instance:
            retries = instance.get_run_records(
                dg.RunsFilter(tags={"dagster/parent_run_id": run_id})
            )
            original = instance.get_run_record_by_id(run_id)
        if not retries or not original.dagster_run.is_finished:
            return False
        found.update(original=original, retry=retries[0])
        return retries[0].dagster_run.is_finished

    wait_until(done, timeout, interval=1, what=f"run {run_id} and its retry to finish")
    return found["original"].dagster_run, found["retry"].dagster_run


def stuck_runs(stack: DagsterStack, task_id: str) -> int:
    return sum(1 for r in runs_of(stack, task_id) if not r.dagster_run.is_finished)


def step_failure_messages(stack: DagsterStack, run_id: str) -> list[str]:
    with stack.instance() as instance:
        events = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    return [
        (e.dagster_event.step_failure_data.user_failure_data.description or "")
        if e.dagster_event.step_failure_data.user_failure_data
        else e.dagster_event.step_failure_data.error.message
        for e in events
    ]


def run_failure_message(stack: DagsterStack, run_id: str) -> str:
    with stack.instance() as instance:
        events = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    return " | ".join(e.message or "" for e in events)


def purged_count(stack: DagsterStack, run_id: str) -> int:
    """The ``purged`` count the run's op reported (0 when it reported none)."""
    with stack.instance() as instance:
        events = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    return sum(
        e.dagster_event.event_specific_data.materialization.metadata["purged"].value for e in events
    )


class Clock:
    """Seconds since construction (a fault's time to resolution)."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() - self.start


@contextlib.contextmanager
def running_fault_stack(
    root: Path, *, executor: str, instance_yaml: Path
) -> Iterator[DagsterStack]:
    """A fault stack in ``root``: a private Redis, the fault task module, built-in schedules
    paused by an override file, the daemon and the webserver; no worker (tests start their own)."""
    from tests.faults.private_services import private_redis

    extra_env = {
        PURGE_LOG_ENV: str(root / "purge-commits.log"),
        "VALIDIBOT_SCHEDULE_OVERRIDES": str(write_overrides(root)),
    }
    with (
        private_redis() as broker,
        DagsterStack.create(
            root,
            executor=executor,
            redis_url=broker.url,
            task_modules=(FAULT_TASK_MODULE,),
            extra_env=extra_env,
            instance_yaml=instance_yaml,
        ) as stack,
    ):
        stack.start_daemon()
        _, stack.url = stack.start_webserver()
        yield stack


def purged_exactly_once(expired: int, fresh: int) -> dict[str, int]:
    """What ``submission_state`` reads once every expired row was purged once and whole."""
    return {
        "total": expired + fresh,
        "purged": expired,
        "unpurged": 0,
        "fresh_intact": fresh,
        "half_marked": 0,
        "half_cleared": 0,
    }
