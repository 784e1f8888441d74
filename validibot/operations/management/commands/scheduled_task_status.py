"""Per task, at a glance: health, last run (status, trigger, when, how long, rows), next tick,
and below the table each task's schedule policies (overlap, catch-up window, pause after
failures, privacy) with the reason when the failure policy paused it.

Reads everything over the Dagster webserver's GraphQL API (``--url``, default
``VALIDIBOT_DAGSTER_URL``, which ``validibot-ops dev`` prints). Health is not computed here: it
is Dagster's freshness verdict on the task's asset (the freshness daemon's, the one the
``validibot_freshness_alerts`` sensor alerts on and ``doctor`` reports), plus the latest result
of each asset check, named by :func:`validibot.tasks.health.task_state`.
"""

from __future__ import annotations

import difflib
import json
import warnings
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.timesince import timesince

from validibot.operations.dagster_client import (
    AssetHealth,
    DagsterClient,
    DagsterClientError,
    DagsterUnavailable,
)
from validibot.operations.dst_table import preview_lines
from validibot.operations.history_report import PERIODS, history_rows, history_table
from validibot.tasks import dst_preview
from validibot.tasks.dst_preview import MAX_DAYS as MAX_PREVIEW_DAYS
from validibot.tasks.health import (
    FAILING,
    LATE,
    NEVER_RUN,
    PENDING,
    STOPPED,
    UNHEALTHY,
    task_state,
)
from validibot.tasks.overrides import OverridesError, load_overrides
from validibot.tasks.policies import FAILURE_POLICY_SENSOR, paused_reasons, policy_fields
from validibot.tasks.registry import (
    BACKEND_DAGSTER,
    ClockChangeWarning,
    get_tasks,
    get_tasks_for_backend,
    iter_fire_times,
)
from validibot.tasks.triggers import trigger_of

HISTORY = 20
SKIP_COUNTS = {"status", "dry_run", "duration_s", "error", "batches"}
UNREACHABLE_HINT = (
    "; task health is Dagster's own freshness verdict, so none can be shown without it "
    "(start the webserver, or pass --url)"
)


def _when(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts else None


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "-"
    if (now - moment).total_seconds() < 60:
        return "just now"  # timesince() would say "0 minutes"
    return f"{timesince(moment, now, depth=1)} ago".replace("\xa0", " ")


def refuse_unknown(requested: list[str], known: set[str]) -> None:
    """``--task`` ids must exist (a typo must not print an empty, reassuring answer)."""
    unknown = sorted(set(requested) - known)
    if not unknown:
        return
    hints = []
    for task_id in unknown:
        match = difflib.get_close_matches(task_id.removesuffix("_schedule"), sorted(known), n=1)
        hints.append(f"{task_id} (did you mean {match[0]!r}?)" if match else task_id)
    raise CommandError(f"unknown task id(s): {', '.join(hints)}")


class Command(BaseCommand):
    help = (
        "Show each scheduled task's health as Dagster judges it (its freshness verdict and "
        "asset checks: healthy/late/failing/stopped/pending/never_run/disabled), last run "
        "status, when it ran, its duration, rows affected, and the next tick."
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
            help="exit 1 when any task is late or failing or has a failed ERROR asset check "
            "(for monitoring probes)",
        )
        parser.add_argument(
            "--preview",
            action="store_true",
            help="instead of health: each task's ticks across the next two clock changes of "
            "its timezone, as Dagster runs them (shifted, skipped, once, twice); offline",
        )
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help=f"with --preview: look this many days ahead instead (1-{MAX_PREVIEW_DAYS})",
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
        # The registry warns about every task's clock changes as Python warnings; this command
        # shows them itself, for the tasks asked for (--preview), so raw lines are noise.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ClockChangeWarning)
            self.report(options)

    def report(self, options: dict[str, Any]) -> None:
        if options["history"]:
            refuse_unknown(options["task"], {t.id for t in get_tasks()})
            self.history(options)
            return
        tasks = get_tasks_for_backend(BACKEND_DAGSTER)
        refuse_unknown(options["task"], {t.id for t in tasks})
        if options["task"]:
            tasks = tuple(t for t in tasks if t.id in options["task"])
        if options["preview"] or options["days"] is not None:
            return self.preview(tasks, options)
        client = DagsterClient(options["url"])
        now = datetime.now(UTC)
        try:
            schedules = client.schedules()
            health = client.asset_health([t.id for t in tasks])
            rows = [self.row(client, task, schedules, health.get(task.id), now) for task in tasks]
            paused = paused_reasons(client.sensor_cursor(FAILURE_POLICY_SENSOR))
        except DagsterUnavailable as exc:
            raise CommandError(f"{exc}{UNREACHABLE_HINT}") from exc
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
        unhealthy = [r["task"] for r in rows if r["health"] in UNHEALTHY or r["checks_failed"]]
        if options["fail_on_unhealthy"] and unhealthy:
            raise CommandError(f"unhealthy: {', '.join(unhealthy)}")

    def preview(self, tasks, options: dict[str, Any]) -> None:
        """The DST preview (validibot/tasks/dst_preview.py): no Dagster needed."""
        if not options["preview"]:
            raise CommandError("--days only applies with --preview")
        try:
            overrides = load_overrides(known_ids={t.id for t in get_tasks()})
            previews = dst_preview.preview(tasks, overrides, datetime.now(UTC), options["days"])
        except (OverridesError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps([p.as_json() for p in previews]))
        else:
            for line in preview_lines(previews):
                self.stdout.write(line)

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

    def row(
        self, client: DagsterClient, task, schedules, health: AssetHealth | None, now: datetime
    ) -> dict[str, Any]:
        runs = client.recent_runs(task.id, limit=HISTORY)
        finished = [r for r in runs if r.finished]
        last = finished[0] if finished else None
        schedule = schedules.get(task.schedule_name)
        running = schedule is not None and schedule.status == "RUNNING"
        freshness = health.freshness if health else None
        state = task_state(
            enabled=task.enabled,
            schedule_running=running,
            freshness=freshness,
            last_run_status=last.status if last else None,
        )
        counts, summary = {}, {}
        if last is not None:
            summary = client.run_summary(last.run_id)
            counts = {k: v for k, v in summary.items() if k not in SKIP_COUNTS}
        checks = list(health.checks) if health else []
        next_tick = None
        if running:
            # The schedule's cron (an incident override may differ from the registry's).
            next_tick = next(iter_fire_times(schedule.cron, task.timezone, now))
        return {
            "task": task.id,
            "health": state,
            "reason": _reason(state, health, last.status if last else None, now),
            "freshness": freshness,
            "checks": [
                {"name": c.name, "status": c.status, "severity": c.severity} for c in checks
            ],
            "checks_failed": [c.name for c in checks if c.failed and c.severity == "ERROR"],
            "schedule": schedule.status if schedule else "MISSING",
            "last_status": last.status if last else None,
            "last_dry_run": bool(summary.get("dry_run")),
            "last_run_id": last.run_id if last else None,
            "last_trigger": trigger_of(last.tags) if last else None,
            "last_finished_at": _when(last.end_time) if last else None,
            "duration_s": round(last.duration_s, 1) if last and last.duration_s else None,
            "counts": counts,
            "next_tick": next_tick,
            "in_progress": len(runs) - len(finished),
            # The incident override the schedule carries: what, why, who, until when.
            "override": schedule.override if schedule else "",
            "maintenance": self.maintenance_note(now),
        }

    def maintenance_note(self, now: datetime) -> str | None:
        """``maintenance: R (by A since S, until T)`` while maintenance mode is on."""
        from validibot.operations import maintenance

        window = maintenance.current()
        return maintenance.describe(window) if maintenance.is_active(window, now) else None

    def table(self, rows: list[dict[str, Any]], now: datetime) -> None:
        header = (
            "task", "health", "checks", "last run", "by", "when", "took", "rows affected",
            "next tick",
        )  # fmt: skip
        lines = [header]
        for r in rows:
            counts = ", ".join(f"{k}={v}" for k, v in r["counts"].items()) or "-"
            lines.append(
                (
                    r["task"],
                    r["health"],
                    _checks_cell(r["checks"]),
                    (r["last_status"] or "never")
                    + (" (dry run)" if r["last_dry_run"] else "")
                    + (" (+1 running)" if r["in_progress"] else ""),
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
        for r in rows:
            if r.get("override"):
                self.stdout.write(f"override {r['task']}: {r['override']}")
        notes = {r["maintenance"] for r in rows if r.get("maintenance")}
        for note in sorted(notes):
            # The line already says maintenance; the note (as in --json) starts with it too.
            text = note.removeprefix("maintenance: ")
            self.stdout.write(f"MAINTENANCE MODE ON, schedules paused: {text}")

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


def _reason(state: str, health: AssetHealth | None, last_status: str | None, now: datetime) -> str:
    """One sentence on Dagster's verdict: the window and the last materialization."""
    seconds = health.fail_window_s if health else None
    window = f"window {timedelta(seconds=seconds)}" if seconds else None
    last = _when(health.last_materialized_at) if health else None
    seen = f"last successful (non dry-run) run {_ago(last, now)}" if last else "no successful run"
    if state == FAILING:
        return f"last run {last_status}; {seen}"
    if state == LATE:
        return f"Dagster's freshness policy failed: {seen}, {window}"
    if state == STOPPED:
        return "the schedule is stopped, so lateness is not reported"
    if state == NEVER_RUN:
        return "no run yet: Dagster judges freshness from the first real run on"
    if state == PENDING:
        return (
            "no verdict from Dagster yet: no real (non dry-run) run has materialized the asset, "
            "or the freshness daemon has not evaluated it (is dagster-daemon running?)"
        )
    return f"{seen}; {window}" if window else seen


def _checks_cell(checks: list[dict[str, Any]]) -> str:
    if not checks:
        return "-"
    failed = [c["name"] for c in checks if c["status"] in {"FAILED", "EXECUTION_FAILED"}]
    if failed:
        return f"{len(failed)} failed: {', '.join(failed)}"
    return f"{len(checks)} ok" if all(c["status"] == "SUCCEEDED" for c in checks) else "pending"
