"""Mark validation runs stuck in RUNNING past the timeout as TIMED_OUT, with a reason."""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser
from django.db.models import Q

from validibot.core.maintenance import MaintenanceCommand, claim_pks, count_limited, positive_int
from validibot.validations.models import RunStatus, ValidationRun

REASON = (
    "Timed out: no callback or heartbeat received from the validator for {minutes} minutes. "
    "The validator may have crashed or lost its connection; re-run the validation."
)


class Command(MaintenanceCommand):
    help = (
        "Mark runs in RUNNING whose started_at and last heartbeat are both older than the "
        "timeout as TIMED_OUT, with a plain-language error."
    )
    task_name = "cleanup_stuck_runs"

    def default_batch_size(self) -> int:
        return settings.VALIDIBOT_PURGE_BATCH_SIZE

    def add_task_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--timeout-minutes",
            type=positive_int,
            default=None,
            help="Minutes without progress after which a run is stuck "
            "(default: settings.VALIDIBOT_STUCK_RUN_TIMEOUT_MINUTES, 30).",
        )

    def perform(self, options: dict[str, Any]) -> None:
        minutes = options["timeout_minutes"] or settings.VALIDIBOT_STUCK_RUN_TIMEOUT_MINUTES
        cutoff = self.now - timedelta(minutes=minutes)
        # A heartbeat newer than the cutoff means the validator is alive, however old the run.
        stuck = ValidationRun.objects.filter(
            status=RunStatus.RUNNING, started_at__lt=cutoff
        ).filter(Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=cutoff))
        if self.dry_run:
            self.counts["timed_out"] = count_limited(stuck, self.dry_run_limit())
            self.progress(f"dry run: would time out {self.counts['timed_out']} run(s)")
            return
        self.run_in_batches(
            lambda size: claim_pks(stuck, size),
            lambda pks: time_out(pks, self.now, REASON.format(minutes=minutes)),
            self._report_batch,
        )

    def _report_batch(self, number: int, pks: Sequence[int], _: int) -> None:
        self.counts["timed_out"] += len(pks)
        self.progress(f"batch {number}: timed out {len(pks)} run(s)")


def time_out(pks: Sequence[int], now: datetime, reason: str) -> int:
    """Mark the runs ``pks`` that are still RUNNING as TIMED_OUT with ``reason``."""
    return ValidationRun.objects.filter(pk__in=pks, status=RunStatus.RUNNING).update(
        status=RunStatus.TIMED_OUT, finished_at=now, error=reason
    )
