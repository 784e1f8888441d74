"""Which dynamically registered OIDC clients are stale (read-only queries)."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Exists, OuterRef, QuerySet
from django.db.models.functions import Coalesce

from validibot.idp.models import OIDCClient, OIDCToken


def live_tokens(now: datetime) -> QuerySet[OIDCToken]:
    """Tokens neither revoked nor expired at ``now``."""
    return OIDCToken.objects.filter(revoked=False, expires_at__gt=now)


def inactive_dcr_clients(now: datetime, cutoff: datetime) -> QuerySet[OIDCClient]:
    """Dynamically registered clients whose last activity (``last_used_at``, else
    ``created_at``) is before ``cutoff``, annotated with ``last_active`` and ``has_live_token``."""
    live = live_tokens(now).filter(client=OuterRef("pk"))
    return (
        OIDCClient.objects.filter(dynamically_registered=True)
        .annotate(last_active=Coalesce("last_used_at", "created_at"))
        .filter(last_active__lt=cutoff)
        .annotate(has_live_token=Exists(live))
    )


def stale_dcr_clients(now: datetime, cutoff: datetime) -> QuerySet[OIDCClient]:
    """Inactive dynamically registered clients that hold no live token: safe to delete."""
    return inactive_dcr_clients(now, cutoff).filter(has_live_token=False)
