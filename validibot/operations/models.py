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


class TaskHistoryDay(models.Model):
    """One task's runs on one day (UTC), rolled up from Dagster before the runs are pruned.

    Written only by ``prune_dagster_history``: Dagster keeps the recent runs (and their count
    plots); this table keeps the totals of everything older than the retention window.
    ``runs`` are real runs (any outcome), ``dry_runs`` are not among them; ``rows_affected``
    is the sum of the counts the runs reported (``counts`` has them by name).
    """

    task = models.CharField(max_length=200)
    day = models.DateField()
    runs = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    canceled = models.PositiveIntegerField(default=0)
    dry_runs = models.PositiveIntegerField(default=0)
    rows_affected = models.BigIntegerField(default=0)
    counts = models.JSONField(default=dict)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["task", "day"], name="taskhistoryday_task_day")
        ]
        ordering = ["day", "task"]

    def __str__(self) -> str:
        return f"{self.task} {self.day}: {self.runs} runs"


class RolledUpRun(models.Model):
    """A Dagster run already added to :class:`TaskHistoryDay` but maybe not deleted yet.

    Committed with the rollup, deleted once the run is gone from Dagster: a prune killed
    between the two finds the row, so it deletes the run without counting it again.
    """

    run_id = models.CharField(max_length=64, unique=True)
    task = models.CharField(max_length=200)
    rolled_up_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.run_id
