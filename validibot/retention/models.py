"""PurgeRetry: a purge whose stored-content deletion failed, retried with capped backoff."""

from django.db import models
from django.db.models import Q
from django.utils import timezone


class PurgeRetry(models.Model):
    """A pending retry for exactly one submission or one output.

    Privacy-critical deletion is never abandoned: past ``VALIDIBOT_PURGE_RETRY_ALERT_ATTEMPTS``
    the retry is reported (command warning, ``over_threshold`` count, failure alert) and keeps
    going at the capped interval.
    """

    submission = models.ForeignKey(
        "submissions.Submission",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="purge_retries",
    )
    output = models.ForeignKey(
        "validations.ValidationOutput",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="purge_retries",
    )
    attempts = models.PositiveIntegerField(default=1)
    next_retry_at = models.DateTimeField(db_index=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(submission__isnull=False, output__isnull=True)
                    | Q(submission__isnull=True, output__isnull=False)
                ),
                name="purgeretry_exactly_one_target",
            ),
            models.UniqueConstraint(
                fields=["submission"],
                condition=Q(submission__isnull=False),
                name="purgeretry_one_per_submission",
            ),
            models.UniqueConstraint(
                fields=["output"],
                condition=Q(output__isnull=False),
                name="purgeretry_one_per_output",
            ),
        ]

    def __str__(self) -> str:
        return f"purge retry {self.pk} (attempt {self.attempts})"

    @property
    def target(self) -> models.Model:
        """The submission or output this retry is for."""
        return self.submission if self.submission_id else self.output
