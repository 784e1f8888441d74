"""Make the scheduler match the registry: Dagster schedule states, or Cloud Scheduler jobs.

    manage.py sync_schedules                    # start/stop Dagster schedules to match
    manage.py sync_schedules --dry-run          # print the plan, change nothing
    manage.py sync_schedules --check            # exit 1 with the diff when anything drifted
    manage.py sync_schedules --url http://dagster:3000
    manage.py sync_schedules --backend=gcp --base-url https://validibot.example.com
    manage.py sync_schedules --list [--format json] # every task, in upstream's shape

Upstream's flags work too: ``--backend celery`` reconciles the Dagster schedules (Dagster
replaces Celery Beat here), ``--backend aws`` is refused (not supported), and ``--list`` /
``--format json`` print every registered task with upstream's fields.

The Dagster backend talks to the webserver's GraphQL API (``--url``, default
``VALIDIBOT_DAGSTER_URL``). ``validibot-ops sync-schedules`` does the same on the Dagster
instance directly. Exit codes: 0 in sync (or synced), 1 drift found by ``--check``, 2 the
scheduler could not be read or changed.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from validibot.operations.dagster_client import DagsterClient, DagsterClientError
from validibot.tasks.overrides import OverridesError, load_overrides
from validibot.tasks.policies import FAILURE_POLICY_SENSOR, paused_reasons
from validibot.tasks.registry import (
    BACKEND_DAGSTER,
    BACKEND_GCP,
    MaintenanceTask,
    get_tasks,
    get_tasks_for_backend,
)
from validibot.tasks.sync_plan import (
    ObservedSchedule,
    SchedulePlan,
    apply_plan,
    plan_schedules,
)
from validibot.tasks.upstream_shape import (
    Backend,
    ScheduledAdminTaskDefinition,
    get_admin_tasks_for_backend,
    get_all_admin_tasks,
)
from validibot.tasks.vocabulary import TASK_TAG

TOKEN_PLACEHOLDER = "Bearer ${VALIDIBOT_TRIGGER_TOKEN}"  # noqa: S105  (a placeholder, no secret)
"""Cloud Scheduler jobs are printed with this header; the operator substitutes the secret."""


class Command(BaseCommand):
    help = (
        "Reconcile the scheduler with the task registry: start/stop Dagster schedules "
        "(--backend=dagster) or print Cloud Scheduler job definitions (--backend=gcp)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--backend",
            choices=[BACKEND_DAGSTER, Backend.CELERY.value, BACKEND_GCP, Backend.AWS.value],
            help="dagster (default; celery is upstream's name for it), gcp, or aws (refused: "
            "not supported)",
        )
        parser.add_argument(
            "--list",
            action="store_true",
            help="list every registered task (of --backend, if given) and change nothing",
        )
        parser.add_argument(
            "--format",
            choices=["text", "json"],
            default="text",
            help="--list output: text (id and name) or json (upstream's fields)",
        )
        parser.add_argument("--url", help="Dagster webserver URL (default VALIDIBOT_DAGSTER_URL)")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
        mode.add_argument(
            "--check", action="store_true", help="change nothing; exit 1 with the diff on drift"
        )
        parser.add_argument(
            "--base-url",
            help="gcp: public base URL of the trigger API (default VALIDIBOT_TRIGGER_BASE_URL)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        backend = options["backend"]
        if backend == Backend.AWS:
            raise CommandError(
                "--backend aws is not supported: EventBridge schedules are not implemented "
                "(nor upstream); use --backend gcp's jobs as a model, or call the HTTP trigger",
                returncode=2,
            )
        if options["format"] != "text" and not options["list"]:
            raise CommandError("--format applies to --list only")
        if options["list"]:
            self.list_tasks(backend, options["format"])
            return
        if backend == Backend.CELERY:
            self.stdout.write(
                "--backend celery: Dagster replaces Celery Beat here; syncing the Dagster schedules"
            )
        if backend == BACKEND_GCP:
            self.stdout.write(json.dumps(self.gcp_jobs(options["base_url"]), indent=2))
            return
        if not (options["check"] or options["dry_run"]):
            self.refuse_in_maintenance()
        client = DagsterClient(options["url"])
        plan = self.plan(client)
        if options["check"] or options["dry_run"]:
            self.stdout.write(plan.render())
            if options["check"] and plan.drifted:
                raise CommandError("schedules drifted from the registry (see above)", returncode=1)
            return
        self.apply(client, plan)

    def list_tasks(self, backend: str | None, output: str) -> None:
        wanted = Backend.CELERY if backend in {None, BACKEND_DAGSTER} else Backend(backend)
        tasks = get_all_admin_tasks() if backend is None else get_admin_tasks_for_backend(wanted)
        if output == "json":
            self.stdout.write(json.dumps([upstream_fields(task) for task in tasks], indent=2))
            return
        for task in tasks:
            self.stdout.write(f"{task.id:<32} {task.name}")

    def refuse_in_maintenance(self) -> None:
        """A sync would restart what maintenance mode paused; `maintenance off` restores."""
        from django.utils import timezone

        from validibot.operations import maintenance

        window = maintenance.current()
        if maintenance.is_active(window, timezone.now()):
            assert window is not None
            raise CommandError(
                f"{maintenance.describe(window)} is on: a sync would restart the schedules it "
                "paused; run `validibot-ops maintenance off` first (it restores them)",
                returncode=2,
            )

    def plan(self, client: DagsterClient) -> SchedulePlan:
        tasks = get_tasks_for_backend(BACKEND_DAGSTER)
        try:
            # Every task may be paused by the file (a gcp-only one through its trigger).
            overrides = load_overrides(known_ids={t.id for t in get_tasks()})
            schedules = client.schedules()
            paused = paused_reasons(client.sensor_cursor(FAILURE_POLICY_SENSOR))
        except (OverridesError, DagsterClientError) as exc:
            raise CommandError(str(exc), returncode=2) from exc
        observed = {
            name: ObservedSchedule(
                s.name,
                s.status,
                s.default_status,
                s.cron,
                s.override,
                paused_reason=paused.get(s.tags.get(TASK_TAG, ""), ""),
            )
            for name, s in schedules.items()
        }
        return plan_schedules(tasks, observed, overrides)

    def apply(self, client: DagsterClient, plan: SchedulePlan) -> None:
        try:
            done = apply_plan(plan, client.start_schedule, client.stop_schedule)
        except DagsterClientError as exc:
            raise CommandError(f"sync stopped half-way: {exc}", returncode=2) from exc
        for line in done:
            self.stdout.write(line)
        for drift in plan.drift:
            self.stderr.write(f"warning: {drift.line()}")
        self.stdout.write(f"synced: {len(done)} changed; {plan.summary()}")

    def gcp_jobs(self, base_url: str | None) -> list[dict[str, Any]]:
        base = (base_url or settings.VALIDIBOT_TRIGGER_BASE_URL or "").rstrip("/")
        if not base.startswith(("https://", "http://")):
            raise CommandError(
                "--backend=gcp needs the trigger API's public URL: pass --base-url "
                "https://... or set VALIDIBOT_TRIGGER_BASE_URL"
            )
        return [gcp_job(task, base) for task in get_tasks_for_backend(BACKEND_GCP)]


def upstream_fields(task: ScheduledAdminTaskDefinition) -> dict[str, Any]:
    """One task as upstream's ``--list --format=json`` prints it (backends as their values)."""
    fields = dataclasses.asdict(task)
    fields["backends"] = [backend.value for backend in task.backends]
    return fields


def gcp_job(task: MaintenanceTask, base_url: str) -> dict[str, Any]:
    """One Cloud Scheduler job (REST ``Job`` resource) that POSTs to the task's trigger."""
    job: dict[str, Any] = {
        "name": f"validibot-{task.id.replace('_', '-')}",
        "description": f"{task.name} (Validibot registry task {task.id})",
        "schedule": task.cron,
        "timeZone": task.timezone,
        "httpTarget": {
            "uri": f"{base_url}{task.api_path}",
            "httpMethod": "POST",
            "headers": {"Authorization": TOKEN_PLACEHOLDER, "Content-Type": "application/json"},
            "body": base64.b64encode(b"{}").decode(),
        },
        # The trigger answers 202 as soon as the run is queued, so a short deadline is
        # enough; a retried POST is harmless (one run per task at a time).
        "attemptDeadline": "60s",
        "retryConfig": {"retryCount": min(task.max_retries, 5)},
    }
    if not task.enabled:
        job["state"] = "PAUSED"  # disabled in the registry: create it, then pause it
    return job
