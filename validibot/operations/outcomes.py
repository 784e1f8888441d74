"""Outcome queries over the HTTP trigger's idempotency keys (read-only)."""

from __future__ import annotations

from datetime import datetime, timedelta

from validibot.core.outcomes import overdue_figure
from validibot.operations.models import IdempotencyKey
from validibot.tasks.outcomes import OutcomeFigure


def expired_idempotency_keys(now: datetime, grace: timedelta) -> OutcomeFigure:
    """Keys past ``expires_at`` plus ``grace``."""
    return overdue_figure(IdempotencyKey.objects.all(), "expires_at", now - grace)
