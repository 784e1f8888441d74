"""Incident overrides after the load: an alert per refused entry, and expiry.

Expiry: one alert when an override expires, then a code-location reload.

An override's cron and running state are baked into its schedule when the code location loads
(``validibot_ops/schedules.py``), and so are the description and ``validibot/override`` tag that
``sync_schedules --check`` reports as drift. Ignoring an expired entry at tick time could not
undo a re-timed cron or a stopped default status, so expiry works through the load: every
load leaves expired entries out (``load_override_file``), and this sensor makes sure a load
happens soon after an expiry instead of at the next deploy.

``validibot_override_expiry`` (every 60 s) re-reads the overrides file and:

0. sends one ``override_refused`` alert per bad entry (this load's, or the file's as it is
   now), naming the file, the entry and the cause; that entry's task keeps its registry
   schedule (``validibot_ops.schedules.applied_overrides``), nothing else is affected;
1. sends one ``override_expired`` alert per expired entry (the sensor cursor remembers which,
   keyed by task and expiry, so a reload, a restart or the next tick never repeats it);
2. on a *later* tick, if this load still applies an override that has expired, asks the
   Dagster webserver (``$VALIDIBOT_DAGSTER_URL``) to reload the code location. The reload
   replaces the process this sensor runs in, so the alert is committed to the cursor first;
   a failed reload is retried every ``RELOAD_RETRY_SECONDS`` and named in the tick's skip
   reason. Without a webserver URL, the skip reason says a reload (or restart) is due.

A code server started with ``dagster api grpc`` cannot re-import its code on reload (Dagster
logs a warning and keeps the old definitions); compose runs ``dagster code-server start``,
which can.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dagster as dg

from validibot.tasks.overrides import (
    OVERRIDES_ENV,
    OverrideProblem,
    ScheduleOverride,
    read_override_file,
)
from validibot.tasks.registry import MaintenanceTask
from validibot_ops.alerts import Alert, build_channels, deliver, ui_link
from validibot_ops.schedules import applied_overrides

OVERRIDE_EXPIRY_SENSOR_NAME = "validibot_override_expiry"
OVERRIDE_EXPIRY_INTERVAL_SECONDS = 60
RELOAD_RETRY_SECONDS = 300
OVERRIDE_EXPIRED = "override_expired"
OVERRIDE_REFUSED = "override_refused"
DAGSTER_URL_ENV = "VALIDIBOT_DAGSTER_URL"
LOCATION_NAME = "validibot_ops"
"""The code location's name in both workspace files (workspace.yaml, workspace.local.yaml)."""

Clock = Callable[[], datetime]
Reloader = Callable[[str], None]
"""Reload the named code location; raises on failure."""

_RELOAD = """
mutation ValidibotReloadLocation($name: String!) {
  reloadRepositoryLocation(repositoryLocationName: $name) {
    __typename
    ... on WorkspaceLocationEntry { locationOrLoadError { __typename } }
    ... on Error { message }
  }
}
"""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def graphql_reload(location: str) -> None:
    """Ask the webserver at ``$VALIDIBOT_DAGSTER_URL`` to reload ``location``."""
    base = os.environ.get(DAGSTER_URL_ENV, "").strip().rstrip("/")
    if not base:
        raise RuntimeError(f"{DAGSTER_URL_ENV} is not set: reload the code location by hand")
    body = json.dumps({"query": _RELOAD, "variables": {"name": location}}).encode()
    request = urllib.request.Request(  # noqa: S310  (the URL is the operator's setting)
        f"{base}/graphql", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        data = json.loads(response.read())
    result = (data.get("data") or {}).get("reloadRepositoryLocation") or {}
    if result.get("__typename") != "WorkspaceLocationEntry":
        raise RuntimeError(f"reload refused: {result.get('message') or data.get('errors')}")


def expiry_key(override: ScheduleOverride) -> str:
    """The cursor's key: a re-issued override (a new expiry) alerts again when it expires."""
    stamp = override.expires_at.isoformat() if override.expires_at else ""
    return f"{override.task_id}@{stamp}"


@dataclass
class ExpiryState:
    """The sensor cursor: alerts already sent, and when a reload was last requested."""

    alerted: dict[str, str] = field(default_factory=dict)
    reload_requested_at: str | None = None

    @classmethod
    def load(cls, cursor: str | None) -> ExpiryState:
        try:
            data = json.loads(cursor or "{}")
            return cls(dict(data.get("alerted", {})), data.get("reload_requested_at"))
        except (ValueError, TypeError, AttributeError):
            return cls()  # an unreadable cursor is a fresh start, never a crashed tick

    def dump(self) -> str:
        return json.dumps(
            {"alerted": self.alerted, "reload_requested_at": self.reload_requested_at},
            sort_keys=True,
        )

    def reload_due(self, now: datetime) -> bool:
        if self.reload_requested_at is None:
            return True
        last = datetime.fromisoformat(self.reload_requested_at)
        return now - last >= timedelta(seconds=RELOAD_RETRY_SECONDS)


def expired_alert(override: ScheduleOverride) -> Alert:
    expires = override.expires_at.isoformat() if override.expires_at else "?"
    return Alert(
        kind=OVERRIDE_EXPIRED,
        task=override.task_id,
        status="EXPIRED",
        summary=f"incident override for {override.task_id} expired at {expires} "
        f"({override.describe()}); its schedule returns to the registry",
        error=f"remove the entry from ${OVERRIDES_ENV} ({override.source})",
        ui_url=ui_link("automation"),
    )


def refused_alert(problem: OverrideProblem) -> Alert:
    held = (
        f"{problem.task_id} keeps its registry schedule"
        if problem.task_id is not None
        else "every task keeps its registry schedule"
    )
    return Alert(
        kind=OVERRIDE_REFUSED,
        task=problem.task_id or "",
        status="REFUSED",
        summary=f"incident overrides entry refused: {problem.message()}; {held}",
        error=f"fix the entry (check it with `validibot-ops overrides check {problem.source}`), "
        "then reload the code location",
        ui_url=ui_link("automation"),
    )


def problem_key(problem: OverrideProblem) -> str:
    return f"refused:{problem.message()}"


def check_problems(
    problems: Sequence[OverrideProblem], state: ExpiryState, now: datetime, send: Callable
) -> list[str]:
    """Alert each refused entry once (this load's, or the file's as it is now)."""
    fresh = [p for p in problems if problem_key(p) not in state.alerted]
    for problem in fresh:
        send(refused_alert(problem))
        state.alerted[problem_key(problem)] = now.isoformat()
    if not problems:
        return []
    return [f"refused: {'; '.join(p.message() for p in problems)}"]


def check_expiry(
    applied: dict[str, ScheduleOverride],
    state: ExpiryState,
    now: datetime,
    send: Callable[[Alert], None],
    reload: Reloader,
    problems: Sequence[OverrideProblem] = (),
    known_ids: set[str] | None = None,
) -> str:
    """One tick: alert each refused entry and each newly expired one, reload if this load
    applies an expired one.

    Returns the tick's skip reason (what is in force, what expired, what was done).
    """
    current = read_override_file(known_ids=known_ids, now=now)
    problems = list({problem_key(p): p for p in (*problems, *current.problems)}.values())
    refused = check_problems(problems, state, now, send)
    expired = {**{k: v for k, v in applied.items() if v.expired(now)}, **current.expired}
    fresh = [o for o in expired.values() if expiry_key(o) not in state.alerted]
    stale = sorted(k for k, v in applied.items() if v.expired(now))
    notes = [f"{len(current.active)} in force", *refused]
    if current.active:
        ending = [o.expires_at for o in current.active.values() if o.expires_at]
        if ending:
            notes.append(f"next expiry {min(ending).isoformat()}")
    for override in fresh:
        send(expired_alert(override))
        state.alerted[expiry_key(override)] = now.isoformat()
    if fresh:
        notes.append(f"alerted: {', '.join(o.task_id for o in fresh)}")
    elif stale and state.reload_due(now):
        # Only on a tick after the alert's: the reload replaces this process, and the alert
        # must already be in the cursor by then.
        state.reload_requested_at = now.isoformat()
        try:
            reload(LOCATION_NAME)
            notes.append(f"expired {stale}: code location reload requested")
        except (OSError, RuntimeError, ValueError, urllib.error.URLError) as exc:
            notes.append(f"expired {stale}: reload the code location ({exc})")
    elif stale:
        notes.append(f"expired {stale}: reload pending")
    known = {expiry_key(o) for o in (*current.active.values(), *expired.values())}
    known |= {problem_key(p) for p in problems}
    state.alerted = {k: v for k, v in state.alerted.items() if k in known}
    return "; ".join(notes)


def build_override_expiry_sensor(
    tasks: Sequence[MaintenanceTask],
    clock: Clock = _utc_now,
    reload: Reloader = graphql_reload,
) -> dg.SensorDefinition:
    """The sensor for the overrides applied by this load (read once, when it is built)."""
    loaded = applied_overrides(tasks, now=clock())
    known_ids = {t.id for t in tasks}

    @dg.sensor(
        name=OVERRIDE_EXPIRY_SENSOR_NAME,
        minimum_interval_seconds=OVERRIDE_EXPIRY_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        required_resource_keys={"django"},  # built only if an email is sent (lazy Django)
        description="Incident overrides: one alert per refused entry (file, entry, cause; "
        "its task keeps the registry schedule), one alert when an entry expires, then a "
        "reload of this code location so its schedules return to the registry.",
    )
    def _expiry(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        state = ExpiryState.load(context.cursor)
        channels = build_channels(prepare_django=lambda: context.resources.django.ensure_django())

        def send(alert: Alert) -> None:
            deliver(alert, channels, context.log)

        reason = check_expiry(
            loaded.active, state, clock(), send, reload, loaded.problems, known_ids
        )
        context.update_cursor(state.dump())
        return dg.SkipReason(reason)

    return _expiry
