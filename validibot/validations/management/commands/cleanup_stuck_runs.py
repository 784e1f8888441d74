"""Repair interrupted durable continuations, then mark validation runs stuck in RUNNING past
the timeout as TIMED_OUT, with a reason."""

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.db.models import Exists, OuterRef, Q

from validibot.core.maintenance import MaintenanceCommand, claim, count_limited, positive_int
from validibot.validations.continuations import RepairResult, repair_validation_run_continuations
from validibot.validations.models import RunStatus, ValidationRun, ValidationRunContinuation

REASON = (
    "Timed out: no callback or heartbeat received from the validator for {minutes} minutes. "
    "The validator may have crashed or lost its connection; re-run the validation."
)
DEADLINE_REASON = (
    "Timed out: no callback received from the validator before this attempt's deadline "
    "({deadline}). The validator may have crashed or lost its connection; re-run the validation."
)


class Command(MaintenanceCommand):
    help = (
        "First repair up to --batch-size durable continuations interrupted after their "
        "validator's callback arrived (dispatch them again past the VALIDATION_*_STALE_SECONDS "
        "deadlines); then mark runs in RUNNING whose started_at and last heartbeat are both "
        "older than the timeout as TIMED_OUT, with a plain-language error. A run with its own "
        "timeout_at times out once that deadline has passed, whatever the site-wide timeout. "
        "A run with an open continuation is left to the repair."
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
            "(default: settings.VALIDATOR_TIMEOUT_SECONDS / 60, i.e. 60; the schedule passes 30).",
        )

    def check_options(self, options: dict[str, Any]) -> None:
        self.minutes = options["timeout_minutes"] or _default_minutes()

    def perform(self, options: dict[str, Any]) -> None:
        self._repair_continuations()
        self._time_out_stuck_runs()

    def _repair_continuations(self) -> None:
        result = repair_validation_run_continuations(
            limit=self.batch_size, dry_run=self.dry_run, now=self.now, should_stop=self.should_stop
        )
        self._count_repair(result)
        self.progress(result.report_line())

    def _count_repair(self, result: RepairResult) -> None:
        self.counts["continuations_eligible"] = result.eligible
        if self.dry_run:
            return
        self.counts["continuations_examined"] = result.examined
        for outcome, found in result.counts.items():
            self.counts[f"continuations_{outcome}"] = found

    def _time_out_stuck_runs(self) -> None:
        minutes = self.minutes
        cutoff = self.now - timedelta(minutes=minutes)
        # The callback of a run with an open continuation arrived: the repair owns it until the
        # continuation completes or is given up.
        continuing = ValidationRunContinuation.objects.filter(
            run=OuterRef("pk"), closed_at__isnull=True
        )
        running = ValidationRun.objects.filter(status=RunStatus.RUNNING).exclude(Exists(continuing))
        # A heartbeat newer than the cutoff means the validator is alive, however old the run.
        site_wide = Q(timeout_at__isnull=True, started_at__lt=cutoff) & (
            Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=cutoff)
        )
        # An attempt's own deadline replaces the site-wide cutoff, earlier or later.
        own_deadline = Q(timeout_at__isnull=False, timeout_at__lt=self.now)
        if self.dry_run:
            self.counts["timed_out"] = count_limited(
                running.filter(site_wide | own_deadline), self.dry_run_limit()
            )
            self.progress(f"dry run: would time out {self.counts['timed_out']} run(s)")
            return
        due = running.filter(site_wide | own_deadline).only("pk", "timeout_at")
        self.run_in_batches(
            lambda size: claim(due, size),
            lambda runs: self._time_out(runs, minutes),
            self._report_batch,
        )

    def _report_batch(self, number: int, runs: Sequence[ValidationRun], _: None) -> None:
        self.counts["timed_out"] += len(runs)
        self.progress(f"batch {number}: timed out {len(runs)} run(s)")

    def _time_out(self, runs: Sequence[ValidationRun], minutes: int) -> None:
        general = [run.pk for run in runs if run.timeout_at is None]
        ValidationRun.objects.filter(pk__in=general, status=RunStatus.RUNNING).update(
            status=RunStatus.TIMED_OUT, finished_at=self.now, error=REASON.format(minutes=minutes)
        )
        for run in runs:
            if run.timeout_at is not None:
                ValidationRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
                    status=RunStatus.TIMED_OUT,
                    finished_at=self.now,
                    error=DEADLINE_REASON.format(deadline=run.timeout_at.isoformat()),
                )


def _default_minutes() -> int:
    seconds = int(settings.VALIDATOR_TIMEOUT_SECONDS)
    if seconds < 60:
        raise CommandError(f"VALIDATOR_TIMEOUT_SECONDS={seconds} must be at least 60")
    return seconds // 60
