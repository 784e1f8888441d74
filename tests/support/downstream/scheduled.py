"""The downstream package's scheduled task, in upstream's shape (its only contract with us)."""

from validibot.core.tasks.registry import (
    ScheduledAdminTaskDefinition,
    register_scheduled_admin_task,
)

PURGE_STALE_REPORTS = ScheduledAdminTaskDefinition(
    id="purge-stale-reports",
    name="Purge stale reports",
    celery_task="downstream.purge_stale_reports",
    api_endpoint="/api/v1/scheduled/purge-stale-reports/",
    schedule_cron="20 * * * *",
    description="Delete sessions that expired more than a week ago (a stand-in for reports).",
)


def register_tasks() -> None:
    """Called from ``AppConfig.ready()`` and named by the entry point."""
    register_scheduled_admin_task(PURGE_STALE_REPORTS)
