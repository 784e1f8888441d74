"""Health check of the whole scheduling stack: one table, non-zero exit on any problem.

Talks to Dagster only over the webserver's GraphQL API (Django never imports Dagster).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from kombu.utils.url import maybe_sanitize_url

from validibot.core.broker import broker_url
from validibot.core.settings_check import SETTINGS, all_setting_errors
from validibot.operations.dagster_client import DagsterClient, DagsterClientError, ScheduleInfo
from validibot.operations.health_check import check_task_health
from validibot.tasks.dst_preview import clock_change_warnings
from validibot.tasks.overrides import OverridesError, load_overrides, read_override_file
from validibot.tasks.registry import BACKEND_DAGSTER, get_tasks, get_tasks_for_backend
from validibot.tasks.sync_plan import ObservedSchedule, plan_schedules
from validibot.tasks.vocabulary import TASK_TAG

OK, WARN, FAIL, SKIP = "ok", "warn", "FAIL", "skip"
CHECKS = (
    "settings",
    "database",
    "redis",
    "workers",
    "code_location",
    "daemon",
    "schedules",
    "overrides",
    "task_health",
    "maintenance",
    "clock_changes",
)
# A daemon is unhealthy when its heartbeat is older than this (Dagster's own UI uses 60 s).
DAEMON_HEARTBEAT_MAX_AGE_S = 120

_WORKSPACE = """
{ workspaceOrError { __typename
    ... on Workspace { locationEntries { name loadStatus
        locationOrLoadError { __typename
          ... on PythonError { message errorChain { error { message } } } } } }
    ... on PythonError { message } } }
"""
_DAEMONS = """
{ instance { daemonHealth { allDaemonStatuses {
    daemonType required healthy lastHeartbeatTime lastHeartbeatErrors { message } } } } }
"""


@dataclass
class Result:
    check: str
    status: str
    detail: str


def drift_advice() -> str:
    """What to run about schedule drift: ``sync_schedules`` is refused in maintenance mode."""
    from validibot.operations import maintenance

    if maintenance.is_active(maintenance.current(), timezone.now()):
        return (
            "maintenance mode is on (schedules paused on purpose; sync_schedules is refused): "
            "`validibot-ops maintenance off` restores them"
        )
    return "run `manage.py sync_schedules`"


def load_error_cause(error: dict[str, Any]) -> str:
    """A failed code location's cause: the first line of its error chain (the error the
    definitions raised, e.g. naming the registry entry), else of the error itself. Dagster's
    own message only says which module failed to load."""
    chain = error.get("errorChain") or []
    message = chain[0]["error"]["message"] if chain else error.get("message", "")
    lines = [line for line in message.strip().splitlines() if line.strip()]
    return lines[0] if lines else "failed to load (no message)"


def override_notes(schedules: Mapping[str, ScheduleInfo]) -> tuple[str, list[str]]:
    """The overrides row from the schedules as loaded: refused entries (FAIL), overrides in
    force (WARN), and an ``enabled: false`` whose schedule the instance stores as running
    (its ticks are skipped; the stored state returns when the entry is removed)."""
    refused = sorted({s.override_problem for s in schedules.values() if s.override_problem})
    notes = [f"refused, registry schedule kept: {cause}" for cause in refused]
    for name, s in sorted(schedules.items()):
        if not s.override:
            continue
        notes.append(f"in force: {name}: {s.override}")
        if "enabled=False" in s.override and s.status == "RUNNING":
            notes.append(
                f"{name}: stored state RUNNING under enabled: false: every tick is skipped "
                "(the stored state applies again once the entry is removed)"
            )
    status = FAIL if refused else WARN if notes else OK
    return status, notes


class Command(BaseCommand):
    help = (
        "Check the VALIDIBOT_* settings, the database, Redis, Celery workers per queue, the "
        "Dagster code location and daemon heartbeats (over GraphQL), schedule drift and the "
        "overrides file, and maintenance mode. Prints a table; exits 1 if any check fails."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--url", default=None, help="Dagster webserver URL (default VALIDIBOT_DAGSTER_URL)"
        )
        parser.add_argument(
            "--skip", action="append", default=[], choices=CHECKS, help="skip a check (repeatable)"
        )
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
        parser.add_argument(
            "--timeout", type=float, default=5.0, help="seconds per remote check (default 5)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.timeout = options["timeout"]
        if self.timeout <= 0:
            raise CommandError("--timeout must be positive")
        self.client = DagsterClient(options["url"], timeout=self.timeout)
        checks: dict[str, Callable[[], Result]] = {
            "settings": self.check_settings,
            "database": self.check_database,
            "redis": self.check_redis,
            "workers": self.check_workers,
            "code_location": self.check_code_location,
            "daemon": self.check_daemon,
            "schedules": self.check_schedules,
            "overrides": self.check_overrides,
            "task_health": self.check_task_health,
            "maintenance": self.check_maintenance,
            "clock_changes": self.check_clock_changes,
        }
        results = []
        for name, check in checks.items():
            if name in options["skip"]:
                results.append(Result(name, SKIP, "skipped (--skip)"))
                continue
            try:
                results.append(check())
            except Exception as exc:  # a check that crashes is a failed check, not a traceback
                results.append(Result(name, FAIL, f"{type(exc).__name__}: {exc}"))
        self.render(results, as_json=options["json"])
        failed = [r.check for r in results if r.status == FAIL]
        if failed:
            raise CommandError(f"{len(failed)} check(s) failed: {', '.join(failed)}")

    def render(self, results: list[Result], as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps([r.__dict__ for r in results]))
            return
        width = max(len(r.check) for r in results)
        for r in results:
            style = {FAIL: self.style.ERROR, WARN: self.style.WARNING}.get(r.status, str)
            self.stdout.write(f"{r.check.ljust(width)}  {style(r.status.ljust(4))}  {r.detail}")

    # -- checks -------------------------------------------------------------------------
    def check_settings(self) -> Result:
        """Every invalid VALIDIBOT_* variable (checked once at start-up), each with its range."""
        errors = all_setting_errors()
        if errors:
            return Result("settings", FAIL, "; ".join(errors[name] for name in sorted(errors)))
        return Result("settings", OK, f"{len(SETTINGS)} VALIDIBOT_* variables valid")

    def check_database(self) -> Result:
        connection.ensure_connection()
        pending = MigrationExecutor(connection).migration_plan(
            MigrationExecutor(connection).loader.graph.leaf_nodes()
        )
        vendor = connection.vendor
        if pending:
            return Result("database", FAIL, f"{vendor}: {len(pending)} unapplied migration(s)")
        return Result("database", OK, f"{vendor}: reachable, migrations applied")

    def check_redis(self) -> Result:
        url = broker_url()
        if not url:
            return Result("redis", SKIP, "no REDIS_URL/CELERY_BROKER_URL: embedded default")
        import redis

        try:
            redis.Redis.from_url(url, socket_timeout=self.timeout).ping()
        except redis.RedisError as exc:
            return Result("redis", FAIL, f"{maybe_sanitize_url(url)}: {exc}")
        return Result("redis", OK, f"{maybe_sanitize_url(url)}: PONG")

    def check_workers(self) -> Result:
        url = broker_url()
        if not url:
            return Result("workers", SKIP, "in-process executor: no Celery workers needed")
        from celery import Celery

        needed = sorted({t.queue for t in get_tasks()})  # HTTP-launched tasks run there too
        app = Celery("validibot-doctor", broker=url)
        try:
            replies = app.control.inspect(timeout=self.timeout).active_queues() or {}
        finally:
            app.close()
        serving: dict[str, list[str]] = {}
        for worker, queues in replies.items():
            for queue in queues:
                serving.setdefault(queue["name"], []).append(worker)
        missing = [q for q in needed if q not in serving]
        listing = "; ".join(f"{q}: {', '.join(sorted(serving.get(q, [])))}" for q in needed)
        if missing:
            return Result(
                "workers",
                FAIL,
                f"no worker answers for queue(s) {', '.join(missing)} "
                f"(start: validibot-ops worker --queue {missing[0]}); {listing}",
            )
        return Result("workers", OK, listing)

    def check_code_location(self) -> Result:
        try:
            data = self.client.execute(_WORKSPACE)["workspaceOrError"]
        except DagsterClientError as exc:
            return Result("code_location", FAIL, str(exc))
        if data["__typename"] != "Workspace":
            return Result("code_location", FAIL, data.get("message", data["__typename"]))
        problems, loaded = [], []
        for entry in data["locationEntries"]:
            loc = entry.get("locationOrLoadError") or {}
            if loc.get("__typename") == "PythonError":
                problems.append(f"{entry['name']}: {load_error_cause(loc)}")
            else:
                loaded.append(f"{entry['name']} ({entry['loadStatus'].lower()})")
        if problems:
            return Result("code_location", FAIL, "; ".join(problems))
        return Result("code_location", OK, ", ".join(loaded) or "no locations")

    def check_daemon(self) -> Result:
        try:
            statuses = self.client.execute(_DAEMONS)["instance"]["daemonHealth"][
                "allDaemonStatuses"
            ]
        except DagsterClientError as exc:
            return Result("daemon", FAIL, str(exc))
        now = datetime.now(UTC).timestamp()
        bad = []
        for daemon in statuses:
            if not daemon["required"]:
                continue
            beat = daemon["lastHeartbeatTime"]
            if beat is None:
                bad.append(f"{daemon['daemonType']}: no heartbeat (is dagster-daemon running?)")
            elif not daemon["healthy"] or now - beat > DAEMON_HEARTBEAT_MAX_AGE_S:
                errors = "; ".join(e["message"] for e in daemon["lastHeartbeatErrors"])[:200]
                bad.append(f"{daemon['daemonType']}: last heartbeat {now - beat:.0f}s ago {errors}")
        if bad:
            return Result("daemon", FAIL, "; ".join(bad))
        required = [d["daemonType"] for d in statuses if d["required"]]
        return Result("daemon", OK, f"{len(required)} daemons heartbeating")

    def check_schedules(self) -> Result:
        try:
            schedules = self.client.schedules()
        except DagsterClientError as exc:
            return Result("schedules", FAIL, str(exc))
        observed = {
            name: ObservedSchedule(
                name=name,
                status=s.status,
                default_status=s.default_status,
                cron=s.cron,
                override=s.override,
            )
            for name, s in schedules.items()
        }
        tasks = get_tasks_for_backend(BACKEND_DAGSTER)
        plan = plan_schedules(tasks, observed, {})
        missing = [t.schedule_name for t in tasks if t.schedule_name not in observed]
        if missing:
            return Result("schedules", FAIL, f"not loaded: {', '.join(missing)}")
        if plan.drifted:
            return Result(
                "schedules", WARN, f"drift ({'; '.join(plan.diff_lines())}); {drift_advice()}"
            )
        return Result("schedules", OK, f"{len(tasks)} schedules match the registry")

    def check_overrides(self) -> Result:
        """The overrides as the code location applied them (its schedules' tags, over
        GraphQL: doctor's own environment may not have the file), each refused entry, and
        each override not in effect. The file in doctor's environment, when set, adds its
        expired entries and those the code location has not applied yet; it is the whole
        answer only when the webserver cannot be reached (and the row says so)."""
        loaded = read_override_file(known_ids={t.id for t in get_tasks()})
        try:
            schedules = self.client.schedules()
        except DagsterClientError as exc:
            notes = [f"code location not reachable ({exc}); this environment's file"]
            notes += [f"in force: {k}: {v.describe()}" for k, v in loaded.active.items()]
            notes += [f"refused: {p.message()}" for p in loaded.problems]
            notes += [f"expired, remove: {k}: {v.describe()}" for k, v in loaded.expired.items()]
            bad = loaded.problems
            status = FAIL if bad else WARN if (loaded.active or loaded.expired) else OK
            return Result("overrides", status, "; ".join(notes))
        status, notes = override_notes(schedules)
        applied = {s.tags.get(TASK_TAG) for s in schedules.values() if s.override}
        waiting = sorted(set(loaded.active) - applied)
        notes += [f"expired, remove: {k}: {v.describe()}" for k, v in loaded.expired.items()]
        notes += [f"not in effect (reload the code location): {k}" for k in waiting]
        status = WARN if status == OK and (loaded.expired or waiting) else status
        return Result("overrides", status, "; ".join(notes) or "none in force")

    def check_task_health(self) -> Result:
        """Dagster's freshness verdicts and asset-check results: the status command's truth."""
        status, detail = check_task_health(self.client)
        return Result("task_health", status, detail)

    def check_maintenance(self) -> Result:
        from validibot.operations import maintenance

        window = maintenance.current()
        if window is None:
            return Result("maintenance", OK, "off")
        if not maintenance.is_active(window, timezone.now()):
            return Result(
                "maintenance",
                WARN,
                f"{maintenance.window_text(window)} has ended; the validibot_maintenance sensor "
                "restores the schedules (or run `validibot-ops maintenance off`)",
            )
        paused = len(window.prior_states)
        return Result(
            "maintenance",
            WARN,
            f"ON: {maintenance.window_text(window)}: {paused} schedules recorded and paused, "
            "HTTP trigger answers 409",
        )

    def check_clock_changes(self) -> Result:
        """Fixed-hour crons (registry and overrides file) whose time a clock change removes
        or repeats: legal, so a warning (``scheduled_task_status --preview`` shows the ticks)."""
        tasks = get_tasks_for_backend(BACKEND_DAGSTER)
        try:
            overrides = load_overrides(known_ids={t.id for t in get_tasks()})
        except OverridesError:
            overrides = {}  # the overrides check reports the file itself
        found = clock_change_warnings(tasks, overrides)
        if found:
            return Result(
                "clock_changes",
                WARN,
                "; ".join(found) + " (see `manage.py scheduled_task_status --preview`)",
            )
        zones = ", ".join(sorted({t.timezone for t in tasks}))
        return Result("clock_changes", OK, f"no fixed-hour cron meets a clock change ({zones})")
