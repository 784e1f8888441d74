"""Per task, at a glance: health, last run (status, trigger, when, how long, rows), next tick.

Reads run history over the Dagster webserver's GraphQL API (``--url``, default
``VALIDIBOT_DAGSTER_URL``, which ``validibot-ops dev`` prints) and judges health with the same
rule as the dead man's switch sensor (validibot/tasks/health.py).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.timesince import timesince

from validibot.operations.dagster_client import DagsterClient, DagsterClientError
from validibot.operations.history_report import PERIODS, history_rows, history_table
from validibot.tasks.health import FAILING, LATE, classify
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
        history = parser.add_argument_group(
            "history", "runs older than the retention window, rolled up by prune_dagster_history"
        )
        history.add_argument(
            "--history", action="store_true", help="show the rolled-up history instead"
        )
        history.add_argument(
            "--by", choices=PERIODS, default="day", help="one line per task per ... (default day)"
        )
        history.add_argument("--since", type=date.fromisoformat, help="first day, YYYY-MM-DD")
        history.add_argument("--until", type=date.fromisoformat, help="last day, YYYY-MM-DD")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["history"]:
            self.history(options)
            return
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
        except DagsterClientError as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(rows, default=str))
        else:
            self.table(rows, now)
        unhealthy = [r["task"] for r in rows if r["health"] in {LATE, FAILING}]
        if options["fail_on_unhealthy"] and unhealthy:
            raise CommandError(f"unhealthy: {', '.join(unhealthy)}")

    def history(self, options: dict[str, Any]) -> None:
        """Totals from the daily history table (no Dagster needed: the runs are gone)."""
        rows = history_rows(
            tasks=options["task"], since=options["since"], until=options["until"], by=options["by"]
        )
        if options["json"]:
            self.stdout.write(json.dumps(rows))
        elif not rows:
            self.stdout.write("no rolled-up history yet (prune_dagster_history fills it)")
        else:
            self.stdout.write("\n".join(history_table(rows)))

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
