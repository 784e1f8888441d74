"""Repair of interrupted durable continuations, run by ``cleanup_stuck_runs`` before its sweep.

A continuation (:class:`~validibot.validations.models.ValidationRunContinuation`) is the rest
of a run's workflow after its validator's callback arrived. A process that dies after the
callback was received but before the continuation finished leaves the run waiting forever;
this pass closes that window. Each open continuation examined is one of:

- ``not_required``: its run already ended (succeeded, failed, canceled, timed out): closed;
- ``busy``: being worked on within its deadline (the callback handler within
  ``VALIDATION_CALLBACK_PROCESSING_STALE_SECONDS`` of receipt, or a worker within
  ``VALIDATION_CONTINUATION_EXECUTION_STALE_SECONDS`` of starting it): left alone;
- ``already_dispatched``: dispatched within ``VALIDATION_CONTINUATION_DISPATCH_STALE_SECONDS``
  and not picked up yet: left alone;
- eligible (never dispatched once the processing deadline passed, or its dispatch or
  execution went stale): ``dispatched`` again (a new dispatch time, one more attempt, the
  execution start cleared), or, after :data:`MAX_DISPATCH_ATTEMPTS` dispatches, ``failed``:
  closed as ``gave_up`` so the timeout sweep can end the run.

Eligible and not-required rows are examined first, so rows being worked on never crowd the
ones that need repair out of ``limit``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Case, IntegerField, Q, QuerySet, Value, When
from django.utils import timezone

from validibot.core.batches import StopCheck, never, run_in_batches
from validibot.validations.models import TERMINAL, ValidationRunContinuation

MAX_DISPATCH_ATTEMPTS = 3
"""Dispatches after which a continuation that still does not complete is given up."""

OUTCOMES = ("dispatched", "already_dispatched", "busy", "not_required", "failed")


@dataclass(frozen=True)
class Deadlines:
    """The three stale cutoffs, as instants (``now`` minus each setting)."""

    processing: datetime
    dispatch: datetime
    execution: datetime

    @classmethod
    def at(cls, now: datetime) -> Deadlines:
        def ago(name: str) -> datetime:
            return now - timedelta(seconds=int(getattr(settings, name)))

        return cls(
            processing=ago("VALIDATION_CALLBACK_PROCESSING_STALE_SECONDS"),
            dispatch=ago("VALIDATION_CONTINUATION_DISPATCH_STALE_SECONDS"),
            execution=ago("VALIDATION_CONTINUATION_EXECUTION_STALE_SECONDS"),
        )


@dataclass
class RepairResult:
    """What one repair pass found: ``eligible`` is dispatched plus failed (a dry run counts
    only ``eligible``)."""

    dry_run: bool = False
    eligible: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))

    @property
    def examined(self) -> int:
        return sum(self.counts.values())

    def report_line(self) -> str:
        if self.dry_run:
            return f"[DRY RUN] Found {self.eligible} durable continuation(s) eligible for repair."
        found = ", ".join(f"{name}={self.counts[name]}" for name in OUTCOMES)
        return f"Continuation repair: examined={self.examined}, {found}"


def eligible_q(deadlines: Deadlines) -> Q:
    """Open continuations that need a dispatch (whatever their run's state)."""
    never_dispatched = Q(dispatched_at__isnull=True, callback_received_at__lt=deadlines.processing)
    dispatch_stale = Q(dispatched_at__lt=deadlines.dispatch, execution_started_at__isnull=True)
    execution_stale = Q(execution_started_at__lt=deadlines.execution)
    return never_dispatched | dispatch_stale | execution_stale


def open_continuations() -> QuerySet[ValidationRunContinuation]:
    return ValidationRunContinuation.objects.filter(closed_at__isnull=True)


def classify(continuation: ValidationRunContinuation, deadlines: Deadlines) -> str:
    """The outcome of examining one open continuation (before the attempt limit)."""
    if continuation.run.status in TERMINAL:
        return "not_required"
    if continuation.execution_started_at is not None:
        stale = continuation.execution_started_at < deadlines.execution
        return "dispatched" if stale else "busy"
    if continuation.dispatched_at is not None:
        stale = continuation.dispatched_at < deadlines.dispatch
        return "dispatched" if stale else "already_dispatched"
    stale = continuation.callback_received_at < deadlines.processing
    return "dispatched" if stale else "busy"


def repair_validation_run_continuations(
    limit: int,
    dry_run: bool = False,
    *,
    now: datetime | None = None,
    should_stop: StopCheck = never,
) -> RepairResult:
    """Examine up to ``limit`` open continuations and repair the interrupted ones.

    One batch of the shared loop (:func:`validibot.core.batches.run_in_batches`): the rows are
    claimed with ``SELECT ... FOR UPDATE SKIP LOCKED`` and changed in one transaction, so two
    concurrent passes never dispatch the same continuation twice. A dry run changes nothing
    and counts the continuations a real pass would dispatch or give up (at most ``limit``).
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    now = now or timezone.now()
    deadlines = Deadlines.at(now)
    result = RepairResult(dry_run=dry_run)
    due = Q(run__status__in=TERMINAL) | eligible_q(deadlines)
    if dry_run:
        eligible = (
            open_continuations().filter(eligible_q(deadlines)).exclude(run__status__in=TERMINAL)
        )
        result.eligible = eligible.order_by()[:limit].count()
        return result

    def claim(size: int) -> Sequence[ValidationRunContinuation]:
        first = Case(When(due, then=Value(0)), default=Value(1), output_field=IntegerField())
        rows = open_continuations().select_related("run").alias(first=first)
        return list(
            rows.select_for_update(skip_locked=True, of=("self",)).order_by("first", "pk")[:size]
        )

    def apply(rows: Sequence[ValidationRunContinuation]) -> None:
        for continuation in rows:
            result.counts[_repair(continuation, classify(continuation, deadlines), now)] += 1

    run_in_batches(claim, apply, batch_size=limit, max_batches=1, should_stop=should_stop)
    result.eligible = result.counts["dispatched"] + result.counts["failed"]
    return result


def _repair(continuation: ValidationRunContinuation, outcome: str, now: datetime) -> str:
    """Apply ``outcome`` to the row; return what was done."""
    if outcome == "not_required":
        _close(continuation, now, "not_required")
    elif outcome == "dispatched":
        if continuation.dispatch_attempts >= MAX_DISPATCH_ATTEMPTS:
            _close(continuation, now, "gave_up")
            return "failed"
        continuation.dispatched_at = now
        continuation.dispatch_attempts += 1
        continuation.execution_started_at = None
        continuation.save(
            update_fields=["dispatched_at", "dispatch_attempts", "execution_started_at"]
        )
    return outcome


def _close(continuation: ValidationRunContinuation, now: datetime, reason: str) -> None:
    continuation.closed_at = now
    continuation.closed_reason = reason
    continuation.save(update_fields=["closed_at", "closed_reason"])
