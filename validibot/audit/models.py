"""Audit log: who (AuditActor) did what (action) to what (target), when, with what details."""

from django.db import models
from django.utils import timezone


class AuditActor(models.Model):
    """Whoever an audit entry is attributed to: a user, a service or an API client.

    An *erased* actor (``erased_at`` set) is the tombstone of a person whose identifying data
    was removed on request; it is kept even with no entries left, as the record that the
    erasure happened.
    """

    kind = models.CharField(max_length=32, default="user")
    identifier = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    erased_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.identifier or f"{self.kind} {self.pk}"


class AuditLogEntry(models.Model):
    """One audited action. Rows past ``AUDIT_HOT_RETENTION_DAYS`` are archived, then deleted."""

    actor = models.ForeignKey(
        AuditActor, null=True, blank=True, on_delete=models.PROTECT, related_name="entries"
    )
    action = models.CharField(max_length=100)
    target = models.CharField(max_length=255, blank=True)
    timestamp = models.DateTimeField(default=timezone.now, db_index=True)
    payload = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name_plural = "audit log entries"

    def __str__(self) -> str:
        return f"{self.action} {self.target} at {self.timestamp:%Y-%m-%d %H:%M}"
