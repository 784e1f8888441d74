"""Outcome queries over the audit log (read-only; see ``validibot/core/outcomes.py``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

from validibot.audit.models import AuditLogEntry
from validibot.core.outcomes import overdue_figure
from validibot.tasks.outcomes import OutcomeFigure


def entries_past_retention(now: datetime, grace: timedelta) -> OutcomeFigure:
    """Entries older than ``AUDIT_HOT_RETENTION_DAYS`` plus ``grace``, frozen or not."""
    retention = timedelta(days=int(settings.AUDIT_HOT_RETENTION_DAYS))
    return overdue_figure(AuditLogEntry.objects.all(), "timestamp", now - retention - grace)
