"""The daemon fires a registered every-minute task on its schedule and the run succeeds."""

from __future__ import annotations

import dagster as dg
import pytest

from tests.support.dagster_stack import DagsterStack
from tests.support.services import wait_until
from validibot_ops.tags import TASK_TAG, TRIGGER_TAG

pytestmark = [pytest.mark.services, pytest.mark.timeout(400)]


def test_a_scheduled_run_appears_and_succeeds_within_two_minutes(postgres_service, tmp_path):
    """`test_noop` (cron * * * * *) is registered via VALIDIBOT_TASK_MODULES, i.e. through
    register(); no schedule is toggled by hand: enabled means running."""
    with DagsterStack.create(tmp_path, executor="in_process") as stack:
        daemon = stack.start_daemon()
        found: dict[str, dg.DagsterRun] = {}

        def succeeded() -> bool:
            assert daemon.alive(), daemon.log()[-3000:]
            with stack.instance() as instance:
                records = instance.get_run_records(
                    dg.RunsFilter(tags={TASK_TAG: "test_noop"}), limit=5
                )
            for record in records:
                run = record.dagster_run
                if run.status == dg.DagsterRunStatus.FAILURE:
                    raise AssertionError(
                        f"scheduled run {run.run_id} failed:\n{daemon.log()[-3000:]}"
                    )
                if run.status == dg.DagsterRunStatus.SUCCESS:
                    found["run"] = run
                    return True
            return False

        wait_until(succeeded, timeout=150, interval=2, what="a successful scheduled test_noop run")
        run = found["run"]
        assert run.tags[TRIGGER_TAG] == "schedule"
        assert run.tags["dagster/schedule_name"] == "test_noop_schedule"
        # The run's command really ran against the stack's Django database.
        with stack.instance() as instance:
            [mat] = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        assert mat.dagster_event.event_specific_data.materialization.metadata["noop"].value == 1
