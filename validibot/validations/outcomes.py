"""Outcome queries over validation runs, outputs and callback receipts (read-only)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Exists, Min, OuterRef
from django.db.models.functions import Coalesce

from validibot.core.outcomes import content_kept_past_expiry, overdue_figure
from validibot.tasks.outcomes import OutcomeFigure
from validibot.validations.models import (
    NON_TERMINAL,
    CallbackReceipt,
    ValidationOutput,
    ValidationRun,
    ValidationRunContinuation,
)


def expired_outputs_kept(now: datetime, grace: timedelta) -> OutcomeFigure:
    """Outputs past ``expires_at`` plus ``grace`` still holding content or a stored file."""
    return content_kept_past_expiry(ValidationOutput.objects.all(), now - grace)


def stuck_runs(now: datetime, grace: timedelta) -> OutcomeFigure:
    """Non-terminal runs past their timeout plus ``grace``.

    A run's own ``timeout_at`` is its deadline; without one, its last sign of life (heartbeat,
    else start, else creation) plus ``VALIDATOR_TIMEOUT_SECONDS``: the longest timeout
    ``cleanup_stuck_runs`` can be run with by default, so a run the schedule's shorter timeout
    would leave alone is never reported. Nor is a run with an open durable continuation: its
    callback arrived and the command's repair pass owns it (re-dispatching it, or giving it up
    after a few dispatches, which reopens it to the timeout sweep).
    """
    cutoff = now - grace
    timeout = timedelta(seconds=int(settings.VALIDATOR_TIMEOUT_SECONDS))
    continuing = ValidationRunContinuation.objects.filter(
        run=OuterRef("pk"), closed_at__isnull=True
    )
    live = ValidationRun.objects.filter(status__in=NON_TERMINAL).exclude(Exists(continuing))
    own = live.filter(timeout_at__isnull=False, timeout_at__lte=cutoff)
    life = Coalesce("heartbeat_at", "started_at", "created_at")
    site = live.filter(timeout_at__isnull=True).annotate(life=life)
    site = site.filter(life__lte=cutoff - timeout)
    own_found = own.aggregate(oldest=Min("timeout_at"))
    site_found = site.aggregate(oldest=Min("life"))
    overdue = [
        (cutoff - own_found["oldest"]).total_seconds() if own_found["oldest"] else 0.0,
        (cutoff - timeout - site_found["oldest"]).total_seconds() if site_found["oldest"] else 0.0,
    ]
    return OutcomeFigure(count=own.count() + site.count(), oldest_overdue_seconds=max(overdue))


def expired_callback_receipts(now: datetime, grace: timedelta) -> OutcomeFigure:
    """Receipts older than the retention window plus ``grace``."""
    retention = timedelta(days=int(settings.VALIDIBOT_CALLBACK_RECEIPT_RETENTION_DAYS))
    return overdue_figure(CallbackReceipt.objects.all(), "received_at", now - retention - grace)
