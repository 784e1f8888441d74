"""Upstream Validibot's scheduled-task registry at dd69a970 (2026-08-06), retyped on purpose.

Source: the upstream-facts page of the project notes, section "Upstream at dd69a970". Ids are
upstream's kebab-case; backends use upstream's words (``celery``, ``gcp``, ``aws``, ``all``).
Update this table only from upstream's registry, never from ours.
"""

from __future__ import annotations

UPSTREAM_COMMIT = "dd69a970"

# upstream id -> (cron, backends)
UPSTREAM_TASKS: dict[str, tuple[str, str]] = {
    "purge-expired-submissions": ("0 * * * *", "all"),
    "purge-expired-outputs": ("*/5 * * * *", "all"),
    "process-purge-retries": ("*/5 * * * *", "all"),
    "cleanup-stuck-runs": ("*/10 * * * *", "all"),
    "verify-validator-deployments": ("17 * * * *", "gcp"),
    "cleanup-idempotency-keys": ("0 3 * * *", "all"),
    "cleanup-callback-receipts": ("0 4 * * 0", "all"),
    "clear-sessions": ("0 2 * * *", "all"),
    "send-periodic-emails": ("0 */6 * * *", "all"),
    "cleanup-orphaned-containers": ("*/10 * * * *", "celery"),
    "enforce-audit-retention": ("30 2 * * *", "all"),
}

# Where ours differs on purpose: (our id, field) -> (our value, why).
INTENDED_DIFFERENCES: dict[tuple[str, str], tuple[object, str]] = {
    ("cleanup_orphaned_containers", "backends"): (
        frozenset({"dagster"}),
        "upstream runs it from Celery Beat only (Docker Compose hosts); here Dagster replaces "
        "Celery Beat, and the cloud schedulers have no Docker socket to clean",
    ),
}

# Tasks only this project has (the Dagster side's own upkeep): our id -> why upstream has none.
OPS_ONLY_TASKS: dict[str, str] = {
    "prune_dagster_history": "upstream schedules with Celery Beat, which keeps no run history; "
    "Dagster keeps every run and its event log until something deletes them",
    "purge_stale_oidc_clients": "upstream added the command after dd69a970 (dea2d64b) but "
    "schedules it nowhere; stale DCR clients pile up unless something runs it, so it runs daily",
}
