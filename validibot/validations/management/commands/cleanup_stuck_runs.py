"""Mark validation runs stuck in RUNNING past the timeout as TIMED_OUT, with a reason."""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser
from django.db import transaction
from django.db.models import Q

from validibot.core.maintenance import MaintenanceCommand, claim, count_limited, positive_int
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
    batch_size_setting = "VALIDIBOT_PURGE_BATCH_SIZE"

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
        for number in self.batches():
            with transaction.atomic():
                pks = [run.pk for run in claim(stuck.only("pk"), self.batch_size)]
                if not pks:
                    break
                ValidationRun.objects.filter(pk__in=pks, status=RunStatus.RUNNING).update(
                    status=RunStatus.TIMED_OUT,
                    finished_at=self.now,
                    error=REASON.format(minutes=minutes),
                )
            self.counts["timed_out"] += len(pks)
            self.progress(f"batch {number}: timed out {len(pks)} run(s)")
