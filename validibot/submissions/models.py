"""Submission: user content (inline and/or a stored file) kept until its retention expires."""

from datetime import timedelta

from django.db import models
from django.db.models import Q
from django.utils import timezone


class RetentionPolicy(models.TextChoices):
    """How long a submission's content may be kept."""

    DO_NOT_STORE = "do_not_store", "Do not store (purge as soon as validation ends)"
    DAYS_1 = "1d", "1 day"
    DAYS_7 = "7d", "7 days"
    DAYS_30 = "30d", "30 days"
    DAYS_365 = "365d", "1 year"

    @property
    def lifetime(self) -> timedelta:
        """How long content under this policy lives after creation."""
        return {
            "do_not_store": timedelta(0),
            "1d": timedelta(days=1),
            "7d": timedelta(days=7),
            "30d": timedelta(days=30),
            "365d": timedelta(days=365),
        }[self.value]


class Submission(models.Model):
    """A user's submission. Purging removes its content and file; the row stays for audit."""

    name = models.CharField(max_length=255)
    content = models.TextField(blank=True)
    file = models.FileField(upload_to="submissions/%Y/%m/", blank=True, max_length=500)
    retention_policy = models.CharField(
        max_length=16, choices=RetentionPolicy.choices, default=RetentionPolicy.DAYS_30
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    content_purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # Only unpurged rows are ever scanned for expiry, so the index stays small.
            models.Index(
                fields=["expires_at"],
                condition=Q(content_purged_at__isnull=True),
                name="submission_purge_due",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        if self.expires_at is None and self.retention_policy:
            policy = RetentionPolicy(self.retention_policy)
            self.expires_at = self.created_at + policy.lifetime
        super().save(*args, **kwargs)
