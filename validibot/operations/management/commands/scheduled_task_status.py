"""Per task, at a glance: health, last run (status, trigger, when, how long, rows), next tick,
and below the table each task's schedule policies (overlap, catch-up window, pause after
failures, privacy) with the reason when the failure policy paused it.

Reads run history over the Dagster webserver's GraphQL API (``--url``, default
``VALIDIBOT_DAGSTER_URL``, which ``validibot-ops dev`` prints) and judges health with the same
rule as the dead man's switch sensor (validibot/tasks/health.py).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.timesince import timesince

from validibot.operations.dagster_client import DagsterClient, DagsterClientError
from validibot.tasks.health import FAILING, LATE, classify
from validibot.tasks.policies import FAILURE_POLICY_SENSOR, paused_reasons, policy_fields
from validibot.tasks.registry import (
    BACKEND_DAGSTER,
    get_tasks_for_backend,
    iter_fire_times,
)
from validibot.tasks.triggers import trigger_of
from validibot.tasks.vocabulary import SUCCESS

HISTORY = 20
SKIP_COUNTS = {"status", "dry_run", "duration_s", "error", "batches"}


def _when(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts else None


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "-"
    if (now - moment).total_seconds() < 60:
        return "just now"  # timesince() would say "0 minutes"
    return f"{timesince(moment, now, depth=1)} ago".replace("\xa0", " ")


class Command(BaseCommand):
    help = (
        "Show each scheduled task's health (healthy/late/failing/never_run/disabled), last "
        "run status, when it ran, its duration, rows affected, and the next tick."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--url", default=None, help="Dagster webserver URL (default VALIDIBOT_DAGSTER_URL)"
        )
        parser.add_argument("--task", action="append", default=[], help="only this task id")
        parser.add_argument("--json", action="store_true", help="print JSON rows")
        parser.add_argument(
            "--fail-on-unhealthy",
            action="store_true",
            help="exit 1 when any task is late or failing (for monitoring probes)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        tasks = get_tasks_for_backend(BACKEND_DAGSTER)
        unknown = set(options["task"]) - {t.id for t in tasks}
        if unknown:
            raise CommandError(f"unknown task id(s): {', '.join(sorted(unknown))}")
        if options["task"]:
            tasks = tuple(t for t in tasks if t.id in options["task"])
        client = DagsterClient(options["url"])
        now = datetime.now(UTC)
        try:
            schedules = client.schedules()
            rows = [self.row(client, task, schedules, now) for task in tasks]
            paused = paused_reasons(client.sensor_cursor(FAILURE_POLICY_SENSOR))
        except DagsterClientError as exc:
            raise CommandError(str(exc)) from exc
        for task, row in zip(tasks, rows, strict=True):
            row["policies"] = policy_fields(task)
            row["paused_reason"] = paused.get(task.id) if row["schedule"] == "STOPPED" else None
        if options["json"]:
            self.stdout.write(json.dumps(rows, default=str))
        else:
            self.table(rows, now)
            self.policy_lines(rows)
        unhealthy = [r["task"] for r in rows if r["health"] in {LATE, FAILING}]
        if options["fail_on_unhealthy"] and unhealthy:
            raise CommandError(f"unhealthy: {', '.join(unhealthy)}")

    def row(self, client: DagsterClient, task, schedules, now: datetime) -> dict[str, Any]:
        runs = client.recent_runs(task.id, limit=HISTORY)
        finished = [r for r in runs if r.finished]
        last = finished[0] if finished else None
        success = next((r for r in finished if r.status == SUCCESS), None)
        schedule = schedules.get(task.schedule_name)
        running = schedule is not None and schedule.status == "RUNNING"
        health = classify(
            task,
            last_success_at=_when(success.end_time) if success else None,
            last_run_status=last.status if last else None,
            last_run_at=_when(last.end_time) if last else None,
            now=now,
        )
        counts = {}
        if last is not None:
            summary = client.run_summary(last.run_id)
            counts = {k: v for k, v in summary.items() if k not in SKIP_COUNTS}
        next_tick = None
        if running:
            # The schedule's cron (an incident override may differ from the registry's).
            next_tick = next(iter_fire_times(schedule.cron, task.timezone, now))
        return {
            "task": task.id,
            # Enabled in the registry but stopped in Dagster (a UI toggle): say so, unless the
            # last run failed, which matters more.
            "health": (
                "stopped"
                if task.enabled and not running and health.state not in {FAILING}
                else health.state
            ),
            "reason": health.reason,
            "schedule": schedule.status if schedule else "MISSING",
            "last_status": last.status if last else None,
            "last_run_id": last.run_id if last else None,
            "last_trigger": trigger_of(last.tags) if last else None,
            "last_finished_at": _when(last.end_time) if last else None,
            "duration_s": round(last.duration_s, 1) if last and last.duration_s else None,
            "counts": counts,
            "next_tick": next_tick,
            "in_progress": len(runs) - len(finished),
        }

    def table(self, rows: list[dict[str, Any]], now: datetime) -> None:
        header = ("task", "health", "last run", "by", "when", "took", "rows affected", "next tick")
        lines = [header]
        for r in rows:
            counts = ", ".join(f"{k}={v}" for k, v in r["counts"].items()) or "-"
            lines.append(
                (
                    r["task"],
                    r["health"],
                    (r["last_status"] or "never") + (" (+1 running)" if r["in_progress"] else ""),
                    r["last_trigger"] or "-",
                    _ago(r["last_finished_at"], now),
                    f"{r['duration_s']}s" if r["duration_s"] is not None else "-",
                    counts,
                    r["next_tick"].strftime("%Y-%m-%d %H:%M %Z") if r["next_tick"] else "stopped",
                )
            )
        widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
        for line in lines:
            text = "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True))
            self.stdout.write(text.rstrip())

    def policy_lines(self, rows: list[dict[str, Any]]) -> None:
        """One detail line per task: its schedule policies, and a failure pause if any."""
        self.stdout.write("")
        self.stdout.write("policies (docs/operations.md, 'Schedule policies'):")
        width = max((len(r["task"]) for r in rows), default=0)
        for r in rows:
            p = r["policies"]
            line = (
                f"  {r['task'].ljust(width)}  overlap={p['overlap']}  catch-up={p['catchup']}  "
                f"pause={p['pause']}  privacy={p['privacy']}"
            )
            self.stdout.write(line)
            if r["paused_reason"]:
                self.stdout.write(f"  {' ' * width}  PAUSED: {r['paused_reason']}")
