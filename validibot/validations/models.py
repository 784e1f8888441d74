"""Validation runs, their outputs, and receipts of validator callbacks."""

from django.db import models
from django.db.models import Q
from django.utils import timezone


class RunStatus(models.TextChoices):
    """Lifecycle of a validation run; see ``NON_TERMINAL`` / ``TERMINAL``."""

    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"
    TIMED_OUT = "timed_out", "Timed out"


NON_TERMINAL: tuple[str, ...] = (RunStatus.PENDING, RunStatus.RUNNING)
TERMINAL: tuple[str, ...] = (
    RunStatus.SUCCEEDED,
    RunStatus.FAILED,
    RunStatus.CANCELED,
    RunStatus.TIMED_OUT,
)


class ValidationRun(models.Model):
    """One validator run over a submission."""

    submission = models.ForeignKey(
        "submissions.Submission", on_delete=models.CASCADE, related_name="runs"
    )
    validator = models.CharField(max_length=100, default="json-schema")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # This attempt's own deadline (set by whoever launched it, e.g. from the validator's
    # timeout); when set, cleanup_stuck_runs uses it instead of the site-wide cutoff.
    timeout_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["started_at"],
                condition=Q(status="running"),
                name="validationrun_running",
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.status})"


class ValidationOutput(models.Model):
    """An output or artifact of a run, with its own expiry. Purging keeps the row."""

    run = models.ForeignKey(ValidationRun, on_delete=models.CASCADE, related_name="outputs")
    name = models.CharField(max_length=255)
    content = models.TextField(blank=True)
    file = models.FileField(upload_to="outputs/%Y/%m/", blank=True, max_length=500)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    content_purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["expires_at"],
                condition=Q(content_purged_at__isnull=True),
                name="output_purge_due",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class CallbackReceipt(models.Model):
    """Proof that a validator's callback arrived (deduplicates callbacks; kept 30 days)."""

    callback_id = models.CharField(max_length=255, unique=True)
    run = models.ForeignKey(
        ValidationRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="receipts"
    )
    status = models.CharField(max_length=32, blank=True)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return self.callback_id


class ValidationRunContinuation(models.Model):
    """The durable continuation of a run after its validator's callback arrived.

    A stand-in for upstream's durable workflow state (its code is not public): the callback
    handler records ``callback_received_at``, then *dispatches* the continuation (re-enqueues
    the rest of the run's workflow: ``dispatched_at``, one more ``dispatch_attempts``); the
    worker that picks it up sets ``execution_started_at`` and, when done, ``closed_at`` with
    reason ``completed``. A process that dies in between leaves the row open; the repair pass
    of ``cleanup_stuck_runs`` (:mod:`validibot.validations.continuations`) finds it past the
    stale deadlines and dispatches it again. No workflow engine runs here, so a dispatch is
    the recorded timestamp and attempt.
    """

    run = models.OneToOneField(ValidationRun, on_delete=models.CASCADE, related_name="continuation")
    callback_received_at = models.DateTimeField(default=timezone.now)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    dispatch_attempts = models.PositiveIntegerField(default=0)
    execution_started_at = models.DateTimeField(null=True, blank=True)
    # Set once nothing is left to do: completed, not_required (the run ended otherwise) or
    # gave_up (dispatched MAX_DISPATCH_ATTEMPTS times without completing).
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_reason = models.CharField(max_length=32, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["callback_received_at"],
                condition=Q(closed_at__isnull=True),
                name="continuation_open",
            ),
        ]

    def __str__(self) -> str:
        return f"continuation of run {self.run_id}"
