"""Dagster's own run history: roll old runs up into :class:`TaskHistoryDay`, then delete them.

The Django side never imports Dagster, so everything here goes through the webserver's GraphQL
API (:class:`~validibot.operations.dagster_client.DagsterClient`):

- ``runsOrError(filter: {createdBefore, statuses: [SUCCESS, FAILURE, CANCELED]})`` lists the
  old finished runs; a run queued, starting, started or canceling is never listed, so never
  deleted;
- each run's event log (``eventConnection``) gives its counts (the op's output metadata, or
  the step failure's metadata for a failed run) and its number of events;
- ``deleteRun`` deletes it. In Dagster 1.13 that mutation calls ``DagsterInstance.delete_run``:
  the run's row, then every event-log record of the run (in the run's shard and in the index
  on SQLite, in the one ``event_logs`` table on Postgres) and the asset-event tags of its
  materializations. That is why the counts are rolled up first: the materializations (the
  per-task plots) go with the run.

What ``deleteRun`` leaves (nothing in the GraphQL schema removes it):

- **compute logs** (the step's captured stdout/stderr files: ``$DAGSTER_HOME/storage/<run
  id>/`` with the default ``LocalComputeLogManager``). Our ops write the command's output to
  the event log, so these hold only Dagster's own step output. They are removed on the
  Dagster side, where the compute log manager is: see ``validibot_ops/history_files.py``;
- on SQLite storage only, the run's emptied shard file (``history/runs/<run id>.db``), also
  removed there. Postgres has no per-run files.

Killed half-way: each batch's rollup commits (with a :class:`RolledUpRun` row per run) before
any of its runs is deleted, so a kill leaves runs that are rolled up but still in Dagster;
the next prune finds their ``RolledUpRun`` rows, deletes the runs without counting them again,
then drops the rows. A run is never counted twice and never deleted uncounted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import transaction

from validibot.operations.dagster_client import (
    DagsterClient,
    GraphQLError,
    RunInfo,
    _run,
    metadata_dict,
)
from validibot.operations.models import RolledUpRun, TaskHistoryDay
from validibot.tasks.vocabulary import (
    CANCELED,
    FAILURE,
    FINISHED_STATUSES,
    SUCCESS,
    TASK_TAG,
)

RECENT = 20
"""How many of a task's newest runs one query reads to find the runs it must keep."""

NOT_COUNTS = frozenset({"status", "dry_run", "duration_s", "error", "batches"})
"""Summary metadata that is not a row count (``rows_affected`` sums the rest)."""

_OLD_RUNS = """
query ValidibotOldRuns($filter: RunsFilter, $cursor: String, $limit: Int) {
  runsOrError(filter: $filter, cursor: $cursor, limit: $limit) {
    __typename
    ... on Runs { results { runId jobName status creationTime startTime endTime
                            tags { key value } } }
    ... on Error { message }
  }
}
"""

_META = """metadataEntries {
    __typename label
    ... on IntMetadataEntry { intValue intRepr }
    ... on FloatMetadataEntry { floatValue floatRepr }
    ... on BoolMetadataEntry { boolValue }
    ... on TextMetadataEntry { text }
    ... on JsonMetadataEntry { jsonString }
  }"""

_RUN_EVENTS = """
query ValidibotRunLog($runId: ID!, $cursor: String) {
  runOrError(runId: $runId) {
    __typename
    ... on Run {
      eventConnection(afterCursor: $cursor, limit: 1000) {
        cursor hasMore
        events {
          __typename
          ... on ExecutionStepOutputEvent { %s }
          ... on ExecutionStepFailureEvent { failureMetadata { %s } }
        }
      }
    }
    ... on Error { message }
  }
}
""" % (_META, _META)  # noqa: UP031  (GraphQL braces make an f-string unreadable)

_DELETE_RUN = """
mutation ValidibotDeleteRun($runId: String!) {
  deleteRun(runId: $runId) {
    __typename
    ... on DeletePipelineRunSuccess { runId }
    ... on RunNotFoundError { message }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}
"""


def task_of(run: RunInfo) -> str:
    """The registry task a run belongs to (its ``validibot/task`` tag), else its job name."""
    return run.tags.get(TASK_TAG) or run.job_name


def day_of(run: RunInfo) -> date:
    """The UTC day a run was created on (the same clock ``createdBefore`` filters on)."""
    return datetime.fromtimestamp(run.creation_time or 0, UTC).date()


@dataclass(frozen=True)
class RunFacts:
    """What the history keeps of one run."""

    run_id: str
    task: str
    day: date
    status: str
    dry_run: bool
    counts: Mapping[str, int | float]
    events: int

    @property
    def rows_affected(self) -> int:
        return int(sum(v for k, v in self.counts.items() if k not in NOT_COUNTS))


@dataclass
class HistoryClient:
    """The GraphQL calls the prune needs, on top of :class:`DagsterClient`'s transport."""

    client: DagsterClient

    def old_finished_runs(
        self, created_before: datetime, limit: int, cursor: str | None = None
    ) -> list[RunInfo]:
        """Finished runs created before ``created_before``, newest first."""
        run_filter = {
            "createdBefore": created_before.timestamp(),
            "statuses": sorted(FINISHED_STATUSES),
        }
        variables = {"filter": run_filter, "limit": limit, "cursor": cursor}
        data = self.client.execute(_OLD_RUNS, variables)
        results = self.client._result(data, "runsOrError", "Runs")["results"]
        return [run for run in map(_run, results) if run.finished]

    def latest(self, run: RunInfo, statuses: Sequence[str] = (), limit: int = 1) -> list[RunInfo]:
        """The newest runs of ``run``'s task (of one of ``statuses``, if given): runs tagged
        with the same task, or of the same job when it carries no task tag."""
        task = run.tags.get(TASK_TAG)
        run_filter: dict[str, Any] = (
            {"tags": [{"key": TASK_TAG, "value": task}]} if task else {"pipelineName": run.job_name}
        )
        if statuses:
            run_filter["statuses"] = list(statuses)
        data = self.client.execute(_OLD_RUNS, {"filter": run_filter, "limit": limit})
        return [_run(r) for r in self.client._result(data, "runsOrError", "Runs")["results"]]

    def facts(self, run: RunInfo) -> RunFacts:
        """The run's counts and number of events, read from its event log (all pages)."""
        outputs: dict[str, Any] = {}
        failure: dict[str, Any] = {}
        events = 0
        cursor = None
        while True:
            data = self.client.execute(_RUN_EVENTS, {"runId": run.run_id, "cursor": cursor})
            page = self.client._result(data, "runOrError", "Run")["eventConnection"]
            events += len(page["events"])
            for event in page["events"]:
                if event["__typename"] == "ExecutionStepOutputEvent":
                    outputs.update(metadata_dict(event.get("metadataEntries") or ()))
                elif event["__typename"] == "ExecutionStepFailureEvent":
                    entries = (event.get("failureMetadata") or {}).get("metadataEntries")
                    failure = metadata_dict(entries or ()) or failure
            if not page["hasMore"]:
                break
            cursor = page["cursor"]
        # A successful run's output carries its counts; a failed one's last step failure
        # carries what its attempt committed before failing (the op puts them there).
        summary = outputs or failure
        counts = {
            k: v
            for k, v in summary.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and k not in NOT_COUNTS
        }
        return RunFacts(
            run_id=run.run_id,
            task=task_of(run),
            day=day_of(run),
            status=run.status,
            dry_run=bool(summary.get("dry_run")),
            counts=counts,
            events=events,
        )

    def delete(self, run_id: str) -> bool:
        """Delete a run and its event log; ``False`` if it was already gone."""
        data = self.client.execute(_DELETE_RUN, {"runId": run_id})
        result = data.get("deleteRun") or {}
        kind = result.get("__typename")
        if kind == "DeletePipelineRunSuccess":
            return True
        if kind == "RunNotFoundError":
            return False
        raise GraphQLError(f"deleteRun {run_id}: {kind}: {result.get('message', '')}")


@dataclass
class Protection:
    """The runs never deleted: each task's latest run, latest finished run and latest success
    (whatever their age), so ``scheduled_task_status`` and the health rule keep their facts."""

    history: HistoryClient
    by_task: dict[str, frozenset[str]] = field(default_factory=dict)

    def protected(self, run: RunInfo) -> bool:
        task = task_of(run)
        if task not in self.by_task:
            self.by_task[task] = self._latest_ids(run)
        return run.run_id in self.by_task[task]

    def _latest_ids(self, run: RunInfo) -> frozenset[str]:
        """One query for the task's newest runs usually answers all three; a task whose
        last success is further back costs a second one."""
        newest = self.history.latest(run, limit=RECENT)
        finished = next((r for r in newest if r.finished), None)
        success = next((r for r in newest if r.status == SUCCESS), None)
        if success is None and len(newest) == RECENT:
            success = next(iter(self.history.latest(run, [SUCCESS])), None)
        if finished is None and len(newest) == RECENT:
            finished = next(iter(self.history.latest(run, sorted(FINISHED_STATUSES))), None)
        return frozenset(r.run_id for r in (*newest[:1], finished, success) if r is not None)


def cutoff(now: datetime, retention_days: int) -> datetime:
    """Runs created before this are pruned."""
    return now - timedelta(days=retention_days)


@transaction.atomic
def roll_up(facts: Iterable[RunFacts]) -> list[RunFacts]:
    """Add each run not rolled up yet to its task's day; return those added.

    One transaction: the :class:`RolledUpRun` rows and the day totals commit together, so a
    run is added exactly once however often this is called with it.
    """
    facts = list(facts)
    done = set(
        RolledUpRun.objects.filter(run_id__in=[f.run_id for f in facts]).values_list(
            "run_id", flat=True
        )
    )
    added = [f for f in facts if f.run_id not in done]
    RolledUpRun.objects.bulk_create(
        [RolledUpRun(run_id=f.run_id, task=f.task) for f in added], ignore_conflicts=False
    )
    for (task, day), group in _by_day(added).items():
        row, _ = TaskHistoryDay.objects.select_for_update().get_or_create(task=task, day=day)
        _add(row, group)
        row.save()
    return added


def _by_day(facts: Iterable[RunFacts]) -> dict[tuple[str, date], list[RunFacts]]:
    groups: dict[tuple[str, date], list[RunFacts]] = {}
    for fact in facts:
        groups.setdefault((fact.task, fact.day), []).append(fact)
    return groups


def _add(row: TaskHistoryDay, facts: Iterable[RunFacts]) -> None:
    counts = dict(row.counts or {})
    for fact in facts:
        if fact.dry_run:
            row.dry_runs += 1
            continue
        row.runs += 1
        row.failures += fact.status == FAILURE
        row.canceled += fact.status == CANCELED
        row.rows_affected += fact.rows_affected
        for name, value in fact.counts.items():
            counts[name] = counts.get(name, 0) + value
    row.counts = counts
