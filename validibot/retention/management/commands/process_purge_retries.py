"""Retry purges whose stored-file deletion failed, with capped exponential backoff."""

from collections.abc import Sequence
from typing import Any

from django.conf import settings

from validibot.core.maintenance import MaintenanceCommand, claim, count_limited
from validibot.retention.models import PurgeRetry
from validibot.retention.repair import ensure_do_not_store_retries as ensure_retries
from validibot.retention.repair import report
from validibot.retention.services import RetryOutcome, due_retries, process_retry


class Command(MaintenanceCommand):
    help = (
        "Process PurgeRetry rows whose next_retry_at <= now. Success purges the row and deletes "
        "the retry in one transaction; failure backs off (capped). Retries are never abandoned: "
        "past VALIDIBOT_PURGE_RETRY_ALERT_ATTEMPTS they are reported and keep going."
    )
    task_name = "process_purge_retries"

    def default_batch_size(self) -> int:
        return settings.VALIDIBOT_PURGE_RETRY_BATCH_SIZE

    def perform(self, options: dict[str, Any]) -> None:
        report(
            self,
            "missing do-not-store retr(y/ies)",
            ensure_retries(self.now, self.dry_run, self.should_stop),
        )
        if self.dry_run:
            due = count_limited(due_retries(self.now), self.dry_run_limit())
            self.counts["succeeded"] = due
            self.progress(f"dry run: would retry {due} purge(s)")
        else:
            self._process_batches()
        self._report_threshold()

    def _process_batches(self) -> None:
        now = self.now
        self.run_in_batches(
            lambda size: claim(due_retries(now), size),
            lambda retries: [process_retry(retry, now) for retry in retries],
            self._report_batch,
        )

    def _report_batch(
        self, number: int, retries: Sequence[PurgeRetry], outcomes: list[RetryOutcome]
    ) -> None:
        for outcome in outcomes:
            for name in self.declared_counts():
                self.counts[name] += int(getattr(outcome, name))
        self.progress(f"batch {number}: processed {len(retries)} retr(y/ies)")

    def _report_threshold(self) -> None:
        threshold = settings.VALIDIBOT_PURGE_RETRY_ALERT_ATTEMPTS
        stuck = PurgeRetry.objects.filter(attempts__gte=threshold).count()
        self.counts["over_threshold"] = stuck
        if stuck:
            self.stderr.write(
                f"WARNING: {stuck} purge retr(y/ies) failed {threshold}+ times; deletion keeps "
                f"retrying every {settings.VALIDIBOT_PURGE_RETRY_MAX_SECONDS}s at most. "
                "Check the storage backend (last_error on each PurgeRetry)."
            )
