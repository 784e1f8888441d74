"""Outcome queries over the IdP's dynamically registered clients (read-only)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

from validibot.core.outcomes import overdue_figure
from validibot.idp.querysets import stale_dcr_clients
from validibot.tasks.outcomes import OutcomeFigure


def stale_dcr_clients_kept(now: datetime, grace: timedelta) -> OutcomeFigure:
    """Stale DCR clients (inactive past the retention window, no live token) kept past
    ``grace``; overdue from the end of their retention window."""
    retention = timedelta(days=int(settings.IDP_OIDC_DCR_INACTIVE_CLIENT_RETENTION_DAYS))
    cutoff = now - retention - grace
    return overdue_figure(stale_dcr_clients(now, now), "last_active", cutoff)
