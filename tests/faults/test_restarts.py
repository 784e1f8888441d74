"""Redis restarted during and between runs, Postgres restarted between runs, the daemon killed
across a schedule tick: ticks are neither lost nor doubled, and the worker carries on.

Everything runs against a private Redis and a private PostgreSQL cluster (the shared servers
serve other test runs). ``test_noop`` fires every minute; built-in schedules are paused.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import InstigatorType, TickStatus

from tests.faults import figures
from tests.faults.helpers import (
    FAULT_TASK_MODULE,
    Clock,
    runs_of,
    stuck_runs,
    write_fault_instance_yaml,
    write_overrides,
)
from tests.faults.private_services import private_postgres, private_redis
from tests.support.dagster_stack import REPO_ROOT, TEST_TASK_MODULE, DagsterStack
from tests.support.services import wait_until
from validibot_ops.tags import TRIGGER_TAG

pytestmark = [pytest.mark.services, pytest.mark.timeout(480)]

NOOP, SLOW = "test_noop", "test_slow"
RUN_KEY = "dagster/run_key"
PROGRESS_ENV = "VALIDIBOT_TEST_SLOW_PROGRESS"


@pytest.fixture(scope="module")
def restart_stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("restart-stack")
    extra_env = {
        "VALIDIBOT_SCHEDULE_OVERRIDES": str(write_overrides(root)),
        PROGRESS_ENV: str(root / "slow-progress"),
    }
    with (
        private_postgres() as pg,
        private_redis() as broker,
        DagsterStack.create(
            root,
            executor="celery",
            task_modules=(TEST_TASK_MODULE, FAULT_TASK_MODULE),
            extra_env=extra_env,
            instance_yaml=write_fault_instance_yaml(root),
            pg_port=pg.port,
            redis_url=broker.url,
        ) as stack,
    ):
        stack.pg, stack.broker = pg, broker
        yield stack


def _sleep_until_second(second: int) -> None:
    """Sleep until the wall clock's next ``hh:mm:<second>``."""
    now = time.time()
    target = now - now % 60 + second
    time.sleep((target if target > now else target + 60) - now)


def _ticks(stack) -> list:
    with stack.instance() as instance:
        [state] = [
            s
            for s in instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE)
            if s.name == f"{NOOP}_schedule"
        ]
        return list(instance.get_ticks(state.instigator_origin_id, state.selector_id))


def _launch_slow(stack, seconds: int) -> None:
    config = json.dumps({"ops": {SLOW: {"config": {"extra_args": ["--seconds", str(seconds)]}}}})
    argv = ["dagster", "job", "launch", "-w", str(REPO_ROOT / "workspace.local.yaml"), "-j", SLOW]
    argv += ["--config-json", config, "--tags", json.dumps({TRIGGER_TAG: "cli"})]
    result = stack.run_cli(argv, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def _finished(stack, task_id: str, count: int, timeout: float) -> list[dg.RunRecord]:
    def done() -> bool:
        records = runs_of(stack, task_id)
        return len(records) >= count and all(r.dagster_run.is_finished for r in records)

    wait_until(done, timeout, interval=1, what=f"{count} finished {task_id} run(s)")
    return runs_of(stack, task_id)


def test_restarts_lose_no_tick_double_no_run_and_workers_reconnect(restart_stack):
    stack = restart_stack
    worker = stack.start_worker("default", name="steady")
    daemon = stack.start_daemon()
    progress = Path(stack.env[PROGRESS_ENV])

    # 1. Redis restarted while a step runs on the worker.
    _launch_slow(stack, 8)
    wait_until(lambda: progress.exists() and len(progress.read_text().split()) >= 2, 120)
    clock = Clock()
    stack.broker.restart()
    [slow] = _finished(stack, SLOW, 1, timeout=200)
    figures.fault(
        "Redis restarted while a step runs",
        survived=slow.dagster_run.status == dg.DagsterRunStatus.SUCCESS,
        outcome=f"run {slow.dagster_run.status.value}",
        guards=["broker reconnect", "appendonly broker"],
        runs_stuck=stuck_runs(stack, SLOW),
        seconds=clock(),
    )
    assert slow.dagster_run.status == dg.DagsterRunStatus.SUCCESS

    # 2. Postgres, then Redis, restarted between runs; the same worker must run the next one.
    clock = Clock()
    stack.pg.restart()
    stack.broker.restart()
    _launch_slow(stack, 1)
    records = _finished(stack, SLOW, 2, timeout=120)
    after = records[-1].dagster_run
    for name, guards in (
        ("PostgreSQL restarted between runs", ["fresh DB connections per command"]),
        ("Redis restarted between runs", ["broker reconnect"]),
    ):
        figures.fault(
            name,
            survived=after.status == dg.DagsterRunStatus.SUCCESS and worker.alive(),
            outcome=f"next run {after.status.value} on the same worker and daemon",
            guards=guards,
            runs_stuck=stuck_runs(stack, SLOW),
            seconds=clock(),
        )
    assert after.status == dg.DagsterRunStatus.SUCCESS
    assert worker.alive() and daemon.alive()

    # 3. The daemon killed ten seconds before a tick and back ten seconds after it.
    _sleep_until_second(50)
    daemon.kill(signal.SIGKILL)
    daemon.stop()
    missed = datetime.fromtimestamp(time.time() - time.time() % 60 + 60, tz=UTC)
    _sleep_until_second(10)
    clock = Clock()
    stack.start_daemon()
    wait_until(
        lambda: any(
            r.dagster_run.tags.get(RUN_KEY) == f"{NOOP}:{missed.isoformat()}"
            for r in runs_of(stack, NOOP)
        ),
        180,  # the new daemon loads the code location first: slow on a loaded machine
        interval=1,
        what=f"the {missed:%H:%M} tick missed while the daemon was down",
    )
    caught_up_after = clock()
    # At least one more tick with the new daemon (polled: a loaded machine ticks late), then
    # check the whole history.
    wait_until(
        lambda: len([t for t in _ticks(stack) if t.status != TickStatus.STARTED]) >= 3,
        150,
        interval=2,
        what="three finished ticks",
    )
    wait_until(lambda: all(r.dagster_run.is_finished for r in runs_of(stack, NOOP)), 60)
    noop_runs = runs_of(stack, NOOP)
    ticks = [t for t in _ticks(stack) if t.status != TickStatus.STARTED]
    tick_times = sorted(t.timestamp for t in ticks)
    minutes = [round(ts / 60) for ts in tick_times]
    keys = Counter(r.dagster_run.tags.get(RUN_KEY) for r in noop_runs)
    duplicates = sum(n - 1 for n in keys.values() if n > 1)
    gaps = [b - a - 1 for a, b in zip(minutes, minutes[1:], strict=False) if b - a > 1]
    figures.fault(
        "dagster-daemon SIGKILLed 10 s before a tick, restarted 10 s after it",
        survived=not duplicates and not gaps and missed.timestamp() in tick_times,
        outcome=f"missed {missed:%H:%M} tick caught up {caught_up_after:.0f} s after restart; "
        f"{len(ticks)} ticks, {len(noop_runs)} runs, duplicate run keys {duplicates}, "
        f"lost ticks {sum(gaps)}",
        guards=["run keys", "schedule catch-up", "skip while busy"],
        runs_stuck=stuck_runs(stack, NOOP),
        seconds=caught_up_after,
    )
    assert duplicates == 0, keys
    assert not gaps, f"ticks lost between {minutes}"
    assert len(set(minutes)) == len(minutes), f"two ticks for one minute: {tick_times}"
    assert missed.timestamp() in tick_times
    assert len(ticks) >= 3
    assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in noop_runs), [
        r.dagster_run.status for r in noop_runs
    ]
    assert worker.alive(), "the worker died instead of reconnecting"
