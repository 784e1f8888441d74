"""Outcome queries over the purge retry queue (read-only; see ``validibot/core/outcomes.py``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Min

from validibot.core.outcomes import overdue_figure
from validibot.retention.models import PurgeRetry
from validibot.tasks.outcomes import OutcomeFigure


def retries_over_threshold(now: datetime, grace: timedelta) -> OutcomeFigure:
    """Retries at or past ``VALIDIBOT_PURGE_RETRY_ALERT_ATTEMPTS`` (the command's own rule);
    their age is counted from the retry's creation."""
    threshold = int(settings.VALIDIBOT_PURGE_RETRY_ALERT_ATTEMPTS)
    stuck = PurgeRetry.objects.filter(attempts__gte=threshold)
    found = stuck.aggregate(count=Count("pk"), oldest=Min("created_at"))
    oldest = found["oldest"]
    age = max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0
    return OutcomeFigure(count=found["count"], oldest_overdue_seconds=age)


def retries_overdue(now: datetime, grace: timedelta) -> OutcomeFigure:
    """Retries whose next attempt was due more than ``grace`` ago."""
    return overdue_figure(PurgeRetry.objects.all(), "next_retry_at", now - grace)
