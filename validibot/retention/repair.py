"""Repair passes run before the purges (upstream fc6b7ef1): deadlines from run ends, retries.

Each pass fixes rows whose retention deadline is missing or later than the policy allows, so
the purge loops that follow only ever read ``expires_at``:

- outputs: a missing expiry is rebuilt as the run's end (``finished_at``) plus the
  submission's retention; a DO_NOT_STORE output is due one minute after its run ends,
  whatever ``expires_at`` says;
- submissions: a missing deadline is recomputed from the latest terminal run's end, and a
  DO_NOT_STORE deadline later than that end is brought forward to it;
- purge retries: a DO_NOT_STORE submission with no retry row gets one once its runs are all
  finished (or, with no run at all, an hour after it was created), so its purge is never left
  to chance.

A deadline that exists and is not DO_NOT_STORE is never moved: it may have been set on
purpose, and moving it later would keep content longer than promised. Non-terminal runs are
never touched (their rows stay busy). Every pass works in chunks of ``CHUNK``, one
transaction each, through the shared batch loop (so a stop request is honoured between
chunks, as in the purges), and a dry run only counts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from django.db.models import Exists, F, Model, OuterRef, Q, QuerySet, Subquery

from validibot.core.batches import StopCheck, never, run_in_batches
from validibot.core.maintenance import MaintenanceCommand
from validibot.retention.models import PurgeRetry
from validibot.submissions.models import RetentionPolicy, Submission
from validibot.validations.models import NON_TERMINAL, TERMINAL, ValidationOutput, ValidationRun

DO_NOT_STORE_GRACE = timedelta(minutes=1)
"""A DO_NOT_STORE output is purged this long after its run ends."""
NO_RUN_GRACE = timedelta(hours=1)
"""A DO_NOT_STORE submission that never got a run is queued for purging after this long."""
CHUNK = 500

DNS = RetentionPolicy.DO_NOT_STORE


def report(command: MaintenanceCommand, what: str, count: int) -> None:
    """One progress line for a repair pass (nothing when there was nothing to repair)."""
    if count:
        verb = "would repair" if command.dry_run else "repaired"
        command.progress(f"repair pass: {verb} {count} {what}")


def output_lifetime(policy: str) -> timedelta:
    """How long an output lives after its run ends, under its submission's policy."""
    return DO_NOT_STORE_GRACE if policy == DNS else RetentionPolicy(policy).lifetime


def outputs_to_repair() -> QuerySet:
    """Unpurged outputs of ended runs whose expiry is missing, or late for DO_NOT_STORE."""
    dns_late = Q(
        run__submission__retention_policy=DNS,
        expires_at__gt=F("run__finished_at") + DO_NOT_STORE_GRACE,
    )
    return ValidationOutput.objects.filter(
        Q(expires_at__isnull=True) | dns_late,
        content_purged_at__isnull=True,
        run__status__in=TERMINAL,
        run__finished_at__isnull=False,
    )


def repair_output_deadlines(dry_run: bool = False, should_stop: StopCheck = never) -> int:
    """Set each output's expiry from its run's end; return how many were (or would be) set."""
    if dry_run:
        return outputs_to_repair().count()
    return _in_chunks(
        outputs_to_repair().values_list(
            "pk", "run__finished_at", "run__submission__retention_policy"
        ),
        ValidationOutput,
        lambda ended, policy: ended + output_lifetime(policy),
        should_stop,
    )


def _latest_end() -> Subquery:
    ended = ValidationRun.objects.filter(
        submission=OuterRef("pk"), status__in=TERMINAL, finished_at__isnull=False
    )
    return Subquery(ended.order_by("-finished_at").values("finished_at")[:1])


def submissions_to_repair() -> QuerySet:
    """Unpurged, idle submissions with an ended run whose deadline is missing or DNS-late."""
    active = ValidationRun.objects.filter(submission=OuterRef("pk"), status__in=NON_TERMINAL)
    return (
        Submission.objects.filter(content_purged_at__isnull=True)
        .annotate(latest_end=_latest_end())
        .filter(latest_end__isnull=False)
        .exclude(Exists(active))
        .filter(
            Q(expires_at__isnull=True) | Q(retention_policy=DNS, expires_at__gt=F("latest_end"))
        )
    )


def repair_submission_deadlines(dry_run: bool = False, should_stop: StopCheck = never) -> int:
    """Recompute deadlines from the latest terminal run; return how many were (or would be)."""
    if dry_run:
        return submissions_to_repair().count()
    return _in_chunks(
        submissions_to_repair().values_list("pk", "latest_end", "retention_policy"),
        Submission,
        lambda ended, policy: ended + RetentionPolicy(policy).lifetime,
        should_stop,
    )


def _in_chunks(
    rows: QuerySet,
    model: type[Model],
    deadline: Callable[[datetime, str], datetime],
    should_stop: StopCheck,
) -> int:
    """Write ``expires_at = deadline(end, policy)`` chunk by chunk until no row qualifies."""
    done: list[int] = []

    def apply(chunk: Sequence[tuple]) -> None:
        model._default_manager.bulk_update(
            [model(pk=pk, expires_at=deadline(ended, policy)) for pk, ended, policy in chunk],
            ["expires_at"],
        )

    run_in_batches(
        lambda size: list(rows.order_by("pk")[:size]),
        apply,
        batch_size=CHUNK,
        should_stop=should_stop,
        report=lambda _number, chunk, _result: done.append(len(chunk)),
    )
    return sum(done)


def submissions_missing_a_retry(now: datetime) -> QuerySet:
    """DO_NOT_STORE submissions, unpurged and idle, with no retry row yet.

    With runs: as soon as none is active. With none: after ``NO_RUN_GRACE`` from creation
    (the run that validates it may not have been created yet).
    """
    runs = ValidationRun.objects.filter(submission=OuterRef("pk"))
    return (
        Submission.objects.filter(retention_policy=DNS, content_purged_at__isnull=True)
        .exclude(Exists(PurgeRetry.objects.filter(submission=OuterRef("pk"))))
        .exclude(Exists(runs.filter(status__in=NON_TERMINAL)))
        .filter(Q(Exists(runs)) | Q(created_at__lte=now - NO_RUN_GRACE))
    )


def ensure_do_not_store_retries(
    now: datetime, dry_run: bool = False, should_stop: StopCheck = never
) -> int:
    """Create the missing retry rows (due now); return how many were (or would be) created."""
    missing = submissions_missing_a_retry(now)
    if dry_run:
        return missing.count()
    done: list[int] = []

    def create(pks: Sequence[int]) -> None:
        # ignore_conflicts: a concurrent run may create the same row (unique per submission).
        PurgeRetry.objects.bulk_create(
            [
                PurgeRetry(submission_id=pk, attempts=0, next_retry_at=now, last_error="")
                for pk in pks
            ],
            ignore_conflicts=True,
        )

    run_in_batches(
        lambda size: list(missing.order_by("pk").values_list("pk", flat=True)[:size]),
        create,
        batch_size=CHUNK,
        should_stop=should_stop,
        report=lambda _number, pks, _result: done.append(len(pks)),
    )
    return sum(done)
