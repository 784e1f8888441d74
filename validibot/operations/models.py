"""Idempotency keys of the HTTP trigger (24-hour lifetime).

The table keeps its first name, ``core_idempotencykey``: the model moved here from ``core``
without a data migration (see ``migrations/0001_initial.py``).
"""

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


def default_idempotency_expiry() -> "timezone.datetime":
    """Now plus the configured key lifetime (``VALIDIBOT_IDEMPOTENCY_KEY_TTL_HOURS``)."""
    return timezone.now() + timedelta(hours=settings.VALIDIBOT_IDEMPOTENCY_KEY_TTL_HOURS)


class IdempotencyKey(models.Model):
    """A client-supplied key remembered so a repeated request returns the first response."""

    key = models.CharField(max_length=255, unique=True)
    request_fingerprint = models.CharField(max_length=64, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(default=default_idempotency_expiry, db_index=True)

    class Meta:
        db_table = "core_idempotencykey"

    def __str__(self) -> str:
        return self.key


class MaintenanceMode(models.Model):
    """Maintenance mode, while it is on: one row (``pk=1``); no row means off.

    The single source of truth for ``validibot-ops maintenance`` (which writes it and pauses the
    schedules), the HTTP trigger (409 ``maintenance: <reason>``), ``doctor`` and the Dagster
    sensor that shows it and ends it at ``until``. ``prior_states`` records each schedule's
    state before the first ``maintenance on`` (see ``validibot_ops/maintenance.py``), so
    ``maintenance off`` restores exactly those.
    """

    reason = models.TextField()
    author = models.CharField(max_length=200)
    started_at = models.DateTimeField(default=timezone.now)
    until = models.DateTimeField(null=True, blank=True)
    prior_states = models.JSONField(default=dict)

    def __str__(self) -> str:
        return f"maintenance: {self.reason}"
