"""The downstream package's Celery task: calls its command, returns upstream's dict."""

from datetime import UTC, datetime
from io import StringIO

from celery import shared_task
from django.core.management import call_command


@shared_task(name="downstream.purge_stale_reports")
def purge_stale_reports(dry_run: bool = False) -> dict:
    out = StringIO()
    args = ["--dry-run"] if dry_run else []
    call_command("purge_stale_reports", *args, stdout=out)
    return {
        "status": "completed",
        "command": "purge_stale_reports",
        "output": out.getvalue(),
        "timestamp": datetime.now(UTC).isoformat(),
    }


@shared_task(name="downstream.report_failure")
def report_failure() -> dict:
    """Ends without completing, as a wrapper whose work failed would say."""
    return {"status": "failed", "error": "the report store refused the write"}


@shared_task(name="downstream.raise_error")
def raise_error() -> dict:
    raise RuntimeError("report store schema is out of date")
