"""Write finished runs of maintenance tasks straight into a Dagster instance, back-dated.

For the prune tests and ``bench/history.py``: a run here looks to GraphQL like one our op made
(the ``validibot/task`` tag, the step output's count metadata and the asset materialization
of a successful run, the step failure's metadata of a failed one, log lines to make up about
15 events), created at any moment in the past. Test and bench code may import Dagster; the
Django app under test only reaches these runs over GraphQL.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import dagster as dg
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.events.log import EventLogEntry
from dagster._core.execution.plan.objects import StepFailureData, UserFailureData
from dagster._core.execution.plan.outputs import StepOutputData, StepOutputHandle
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.runs.schema import RunsTable
from dagster._core.utils import make_new_run_id
from dagster_shared.serdes import serialize_value

from validibot.tasks.vocabulary import ASSET_PREFIX, TASK_TAG, TRIGGER_TAG

EVENTS_PER_RUN = 15


def _metadata(counts: Mapping[str, int], status: str, dry_run: bool) -> dict[str, dg.MetadataValue]:
    return {
        "status": dg.MetadataValue.text(status),
        "dry_run": dg.MetadataValue.bool(dry_run),
        "duration_s": dg.MetadataValue.float(0.5),
        **{name: dg.MetadataValue.int(value) for name, value in counts.items()},
    }


def _entry(run_id: str, job: str, step: str, at: float, event: DagsterEvent | None = None):
    return EventLogEntry(
        error_info=None,
        level=logging.INFO,
        user_message="" if event else "batch 1: deleted 3 (total 3)",
        run_id=run_id,
        timestamp=at,
        step_key=step,
        job_name=job,
        dagster_event=event,
    )


def _step_events(job: str, step: str, status: str, counts, dry_run: bool) -> list[DagsterEvent]:
    if status == "FAILURE":
        metadata = _metadata(counts, "failed", dry_run)
        failure = StepFailureData(
            error=None,
            user_failure_data=UserFailureData(label="intentional-failure", metadata=metadata),
        )
        return [
            DagsterEvent(
                DagsterEventType.STEP_FAILURE.value, job, step_key=step, event_specific_data=failure
            )
        ]
    if status != "SUCCESS":
        return []
    metadata = _metadata(counts, "completed", dry_run)
    output = StepOutputData(StepOutputHandle(step, "result"), metadata=metadata)
    events = [
        DagsterEvent(
            DagsterEventType.STEP_OUTPUT.value, job, step_key=step, event_specific_data=output
        )
    ]
    if not dry_run:
        asset = dg.AssetMaterialization(asset_key=[ASSET_PREFIX, step], metadata=metadata)
        events.append(
            DagsterEvent(
                DagsterEventType.ASSET_MATERIALIZATION.value,
                job,
                step_key=step,
                event_specific_data=StepMaterializationData(asset),
            )
        )
    return events


def record_run(
    instance: dg.DagsterInstance,
    *,
    task: str,
    created: datetime,
    status: str = "SUCCESS",
    counts: Mapping[str, int] | None = None,
    dry_run: bool = False,
    events: int = EVENTS_PER_RUN,
    tagged: bool = True,
) -> str:
    """Add one run of ``task`` created at ``created`` (aware UTC) with ``events`` events."""
    run_id = make_new_run_id()
    tags = {TASK_TAG: task, TRIGGER_TAG: "schedule"} if tagged else {}
    instance.add_run(
        dg.DagsterRun(job_name=task, run_id=run_id, status=dg.DagsterRunStatus(status), tags=tags)
    )
    at = created.timestamp()
    typed = _step_events(task, task, status, counts or {}, dry_run)
    for number, event in enumerate(typed):
        instance.store_event(_entry(run_id, task, task, at + number * 0.01, event))
    fillers = [_entry(run_id, task, task, at + n * 0.01) for n in range(len(typed), events)]
    _insert_log_lines(instance, run_id, fillers)
    backdate(instance, run_id, created)
    return run_id


def _insert_log_lines(instance: dg.DagsterInstance, run_id: str, entries: list) -> None:
    """Store plain log lines in one statement (``store_event`` writes one at a time); they
    are rows like any other of the run's event log, in its shard on SQLite."""
    if not entries:
        return
    rows = [
        {
            "run_id": run_id,
            "event": serialize_value(entry),
            "dagster_event_type": None,
            "timestamp": datetime.fromtimestamp(entry.timestamp, UTC).replace(tzinfo=None),
            "step_key": entry.step_key,
        }
        for entry in entries
    ]
    storage = instance.event_log_storage
    with storage.run_connection(run_id) as conn:  # type: ignore[attr-defined]
        conn.execute(SqlEventLogStorageTable.insert(), rows)


def backdate(instance: dg.DagsterInstance, run_id: str, created: datetime) -> None:
    """Move a run's creation (and start/end) to ``created``, as if it ran then."""
    naive = created.replace(tzinfo=None)
    with instance.run_storage.connect() as conn:  # type: ignore[attr-defined]
        conn.execute(
            RunsTable.update()
            .where(RunsTable.c.run_id == run_id)
            .values(
                create_timestamp=naive,
                update_timestamp=naive + timedelta(seconds=1),
                start_time=created.timestamp(),
                end_time=created.timestamp() + 1,
            )
        )


def event_rows(instance: dg.DagsterInstance, run_id: str) -> int:
    """How many event-log records the storage still holds for ``run_id``."""
    return len(instance.all_logs(run_id))
