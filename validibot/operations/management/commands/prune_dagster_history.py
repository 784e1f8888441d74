"""Delete Dagster runs older than the retention window, after rolling them up per task per day.

Talks to Dagster over the webserver's GraphQL API only (validibot/operations/history.py says
what ``deleteRun`` removes and what it leaves). A run in progress is never listed, and each
task's latest run, latest finished run and latest success are kept whatever their age.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser

from validibot.core.maintenance import MaintenanceCommand
from validibot.operations.dagster_client import DagsterClient
from validibot.operations.history import (
    HistoryClient,
    Protection,
    RunFacts,
    cutoff,
    roll_up,
)
from validibot.operations.models import RolledUpRun

DEFAULT_BATCH_SIZE = 50
"""Runs per batch: each run costs a few GraphQL calls, so far fewer than a table's rows."""


class Command(MaintenanceCommand):
    help = (
        "Roll finished Dagster runs older than VALIDIBOT_DAGSTER_RUN_RETENTION_DAYS up into the "
        "daily task history (scheduled_task_status --history), then delete them with their "
        "event logs, over the webserver's GraphQL API. Never deletes a run in progress or a "
        "task's latest run."
    )

    def default_batch_size(self) -> int:
        return DEFAULT_BATCH_SIZE

    def add_task_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--url", default=None, help="Dagster webserver URL (default VALIDIBOT_DAGSTER_URL)"
        )

    def perform(self, options: dict[str, Any]) -> None:
        days = int(settings.VALIDIBOT_DAGSTER_RUN_RETENTION_DAYS)
        self.history = HistoryClient(DagsterClient(options["url"]))
        self.protection = Protection(self.history)
        self.kept: set[str] = set()
        self.cursor: str | None = None
        self.created_before = cutoff(self.now, days)
        self.progress(
            f"{'dry run: ' if self.dry_run else ''}pruning finished runs created before "
            f"{self.created_before:%Y-%m-%d %H:%M} UTC ({days} days)"
        )
        if not self.dry_run:
            self.finish_interrupted()
        self.run_in_batches(self.claim, self.apply, self.report, using=None)
        self.counts["kept_latest"] = len(self.kept)

    def finish_interrupted(self) -> None:
        """Delete the runs a killed prune rolled up but had not deleted yet (not re-counted)."""
        pending = list(RolledUpRun.objects.values_list("run_id", flat=True))
        for run_id in pending:
            self.history.delete(run_id)
            RolledUpRun.objects.filter(run_id=run_id).delete()
            self.counts["deleted"] += 1
        if pending:
            self.progress(f"finished {len(pending)} run(s) a previous prune had rolled up")

    def claim(self, size: int) -> Sequence[RunFacts]:
        """The next ``size`` old finished runs that are not a task's latest, with their facts.

        A real run deletes what it claims, so each claim reads from the newest old run again;
        a dry run deletes nothing and pages on with a cursor instead.
        """
        found: list[RunFacts] = []
        cursor = self.cursor
        while len(found) < size:
            page = self.history.old_finished_runs(self.created_before, size, cursor)
            for run in page:
                if self.protection.protected(run):
                    self.kept.add(run.run_id)
                elif len(found) < size:
                    found.append(self.history.facts(run))
            if len(page) < size:
                break
            cursor = page[-1].run_id
        if self.dry_run and found:
            self.cursor = found[-1].run_id
        return found

    def apply(self, facts: Sequence[RunFacts]) -> int:
        """Commit the rollup, then delete the runs; returns the number rolled up."""
        if self.dry_run:
            return 0
        added = roll_up(facts)  # commits before any deletion
        for fact in facts:
            self.history.delete(fact.run_id)
        RolledUpRun.objects.filter(run_id__in=[f.run_id for f in facts]).delete()
        return len(added)

    def report(self, number: int, facts: Sequence[RunFacts], rolled_up: int) -> None:
        self.counts["deleted"] += len(facts)
        self.counts["events"] += sum(f.events for f in facts)
        self.counts["rolled_up"] += rolled_up
        self.counts["batches"] = number
        self.counts["kept_latest"] = len(self.kept)
        verb = "would delete" if self.dry_run else "deleted"
        total = self.counts["deleted"]
        self.progress(f"batch {number}: {verb} {len(facts)} run(s) (total {total})")
