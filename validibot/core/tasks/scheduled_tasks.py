"""Upstream's Celery tasks, one per built-in task, for the operator guide's manual paths.

Each has upstream's function name and registered name (``validibot.<id>``, which is what the
built-ins' ``celery_task`` fields name):

- **calling it** runs the task's command in-process, now, and returns upstream's dict::

      >>> from validibot.core.tasks.scheduled_tasks import purge_expired_submissions
      >>> result = purge_expired_submissions()
      >>> result["status"]
      'completed'

  (``{"status", "command", "output", "timestamp"}`` as upstream, plus ``summary``: the
  command's JSON summary). ``dry_run=True`` passes ``--dry-run``.
- **``.delay()``** (or ``.apply_async()``) launches the task's Dagster job through the
  webserver (``VALIDIBOT_DAGSTER_URL``), tagged ``validibot/trigger=shell``, so run history,
  the task's lock, maintenance mode and its policies apply; it returns a
  :class:`LaunchedRun` naming the run. There is no Celery broker to queue it on: Dagster
  replaces Celery Beat and its workers here.

Importing this module needs no ``django.setup()`` (the code location checks Celery names at
load); calling a task does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from celery import Task, shared_task

from validibot.tasks.registry import BUILTIN_TASKS

__all__ = ["LaunchedRun", *(task.id for task in BUILTIN_TASKS)]


@dataclass(frozen=True)
class LaunchedRun:
    """What ``.delay()`` returns: the Dagster run it launched (its ``id`` is the run id)."""

    id: str
    task: str
    url: str

    def __str__(self) -> str:
        return f"Dagster run {self.id} of {self.task}: {self.url}"


class LaunchesDagsterJob(Task):
    """A Celery task whose ``apply_async`` launches the task's Dagster job instead of queuing."""

    abstract = True

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> LaunchedRun:
        from validibot.operations.dagster_client import DagsterClient

        task_id = self.name.removeprefix("validibot.")
        dry_run = bool((kwargs or {}).get("dry_run"))
        client = DagsterClient()
        run_id = client.launch_task(task_id, trigger="shell", dry_run=dry_run)
        return LaunchedRun(id=run_id, task=task_id, url=client.run_url(run_id))


def run_now(task_id: str, dry_run: bool = False) -> dict[str, Any]:
    """Run the built-in task's command in-process; upstream's dict, with our summary added."""
    from validibot.core.runner import run_task_command
    from validibot.tasks.registry import get_task

    lines: list[str] = []
    summary = run_task_command(task_id, ["--dry-run"] if dry_run else [], lines.append)
    return {
        "status": summary.get("status", "completed"),
        "command": get_task(task_id).command,  # type: ignore[union-attr]  (ran just above)
        "output": "\n".join(lines),
        "timestamp": datetime.now(UTC).isoformat(),
        "summary": summary,
    }


def _define(task_id: str) -> Any:
    def run(dry_run: bool = False) -> dict[str, Any]:
        return run_now(task_id, dry_run=dry_run)

    run.__name__ = run.__qualname__ = task_id
    run.__module__ = __name__
    run.__doc__ = f"Run the {task_id!r} scheduled task (call: now, in-process; .delay(): Dagster)."
    return shared_task(name=f"validibot.{task_id}", base=LaunchesDagsterJob)(run)


# One module-level task per built-in, under upstream's names (explicit, so grep finds them).
purge_expired_submissions = _define("purge_expired_submissions")
purge_expired_outputs = _define("purge_expired_outputs")
process_purge_retries = _define("process_purge_retries")
cleanup_stuck_runs = _define("cleanup_stuck_runs")
verify_validator_deployments = _define("verify_validator_deployments")
cleanup_orphaned_containers = _define("cleanup_orphaned_containers")
cleanup_idempotency_keys = _define("cleanup_idempotency_keys")
cleanup_callback_receipts = _define("cleanup_callback_receipts")
clear_sessions = _define("clear_sessions")
send_periodic_emails = _define("send_periodic_emails")
enforce_audit_retention = _define("enforce_audit_retention")
purge_stale_oidc_clients = _define("purge_stale_oidc_clients")
prune_dagster_history = _define("prune_dagster_history")
