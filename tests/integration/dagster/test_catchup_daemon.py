"""After downtime, a real ``dagster-daemon`` skips a tick older than its catch-up window and
catches a windowless task up with exactly one run.

The downtime is real schedule state, not a wait: the daemon runs once (it stores each
schedule's state), is stopped, its stored states are set back three hours (what a daemon
stopped three hours ago leaves behind), and it is started again. Both tasks fire daily two
hours ago, so the one missed tick is two hours old: beyond the digest's one-hour window.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.scheduler.instigation import ScheduleInstigatorData, TickStatus

from tests.support.dagster_stack import TEST_TASK_MODULE, DagsterStack
from tests.support.services import wait_until
from validibot_ops.tags import TASK_TAG

pytestmark = [pytest.mark.services, pytest.mark.timeout(600)]
SCHEDULES = ("catchup_digest_schedule", "catchup_purge_schedule")
CRON_ENV = "VALIDIBOT_TEST_CATCHUP_CRON"
"""Read by tests.support.testapp.catchup_tasks in the stack's processes (never imported here:
importing it registers its tasks in this process too)."""


def _states(stack: DagsterStack) -> dict:
    with stack.instance() as instance:
        states = instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE)
    return {s.instigator_name: s for s in states if s.instigator_name in SCHEDULES}


def test_a_tick_older_than_the_window_is_skipped_and_a_purge_catches_up_once(
    postgres_service, tmp_path
):
    now = datetime.now(UTC)
    missed = (now - timedelta(hours=2)).replace(second=0, microsecond=0)
    cron = f"{missed.minute} {missed.hour} * * *"
    with DagsterStack.create(
        tmp_path,
        executor="in_process",
        task_modules=(TEST_TASK_MODULE, "tests.support.testapp.catchup_tasks"),
        extra_env={CRON_ENV: cron},
    ) as stack:
        daemon = stack.start_daemon()
        wait_until(
            lambda: len(_states(stack)) == 2 or not daemon.alive(),
            300,
            interval=2,
            what="the daemon storing both schedules' states",
        )
        assert daemon.alive(), daemon.log()[-3000:]
        daemon.stop()

        down_since = (now - timedelta(hours=3)).timestamp()
        with stack.instance() as instance:
            for state in _states(stack).values():
                assert not instance.get_ticks(state.instigator_origin_id, state.selector_id)
                instance.update_instigator_state(
                    state.with_data(ScheduleInstigatorData(cron, down_since, down_since))
                )

        daemon = stack.start_daemon()

        def ticks(name: str) -> list:
            state = _states(stack)[name]
            with stack.instance() as instance:
                return instance.get_ticks(state.instigator_origin_id, state.selector_id)

        def done() -> bool:
            assert daemon.alive(), daemon.log()[-3000:]
            finished = [
                t for t in ticks("catchup_purge_schedule") if t.status != TickStatus.STARTED
            ]
            return bool(ticks("catchup_digest_schedule")) and bool(finished)

        wait_until(done, 300, interval=2, what="both schedules' catch-up ticks")

        [digest] = ticks("catchup_digest_schedule")
        assert digest.status == TickStatus.SKIPPED
        assert digest.timestamp == pytest.approx(missed.timestamp())
        assert "catchup_window_seconds=3600 (1h)" in (digest.skip_reason or "")

        [purge] = ticks("catchup_purge_schedule")
        assert purge.status == TickStatus.SUCCESS
        with stack.instance() as instance:
            runs = instance.get_run_records(dg.RunsFilter(tags={TASK_TAG: "catchup_purge"}))
            digests = instance.get_run_records(dg.RunsFilter(tags={TASK_TAG: "catchup_digest"}))
        assert len(runs) == 1, "a purge catches up with exactly one run"
        # The run is the missed tick's (run key = task + tick time), not a later one.
        assert runs[0].dagster_run.tags["dagster/run_key"] == f"catchup_purge:{missed.isoformat()}"
        assert not digests
