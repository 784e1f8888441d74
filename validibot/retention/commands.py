"""The purge command shared by purge_expired_submissions and purge_expired_outputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db.models import QuerySet

from validibot.core.maintenance import MaintenanceCommand, count_limited
from validibot.retention.services import BatchResult, PurgeRun, PurgeTarget


class PurgeCommand(MaintenanceCommand):
    """Purge expired rows of one :class:`PurgeTarget` in claimed, committed batches."""

    target: PurgeTarget

    def default_batch_size(self) -> int:
        return settings.VALIDIBOT_PURGE_BATCH_SIZE

    def default_max_batches(self) -> int:
        return settings.VALIDIBOT_PURGE_MAX_BATCHES

    def perform(self, options: dict[str, Any]) -> None:
        due = self.target.due(self.now)
        if self.dry_run:
            self._dry_run(due)
            return
        self._purge_in_batches()
        # Counted after purging, when the partial index holds few unpurged rows; counted
        # first, it scanned the whole backlog of a big table in one statement.
        self.counts["skipped_busy"] = due.filter(self.target.busy()).count()
        self._report_leftovers()

    def _dry_run(self, due: QuerySet) -> None:
        self.counts["skipped_busy"] = due.filter(self.target.busy()).count()
        self.counts["purged"] = count_limited(due.exclude(self.target.busy()), self.dry_run_limit())
        self.progress(
            f"dry run: would purge {self.counts['purged']} "
            f"{self.target.model._meta.verbose_name_plural}"
        )

    def _purge_in_batches(self) -> None:
        run = PurgeRun(self.target, self.now)
        self.run_in_batches(run.claim, run.apply, self._report_batch, using=run.db)

    def _report_batch(self, number: int, claimed: Sequence[Any], result: BatchResult) -> None:
        self.counts["batches"] = number
        self.counts["purged"] += result.purged
        self.counts["failed"] += result.failed
        self.progress(
            f"batch {number}: purged {result.purged}, failed {result.failed} "
            f"(total purged {self.counts['purged']})"
        )

    def _report_leftovers(self) -> None:
        if self.counts["failed"]:
            self.progress(
                f"{self.counts['failed']} stored file(s) could not be deleted; "
                "queued for process_purge_retries"
            )
        if self.counts["skipped_busy"]:
            self.progress(
                f"{self.counts['skipped_busy']} skipped: a validation run is still active"
            )
