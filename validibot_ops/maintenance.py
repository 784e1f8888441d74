"""Maintenance mode on the Dagster instance: pause every schedule, then restore exactly.

``validibot-ops maintenance on --reason R --author A [--until T]``:

1. records, in the Django row that is maintenance mode's single source of truth
   (``validibot.operations.models.MaintenanceMode``), each schedule's state as the instance
   stores it: no stored state (the code's default), or a stored ``RUNNING``, ``STOPPED`` or
   ``DECLARED_IN_CODE``, with its origin and selector ids;
2. then stops every running schedule. The HTTP trigger reads the same row and answers 409.

Recording comes first and is committed: a command killed half-way leaves maintenance on with
the states it saw, and running it again stops the rest. Running ``on`` again keeps the first
recorded states (a schedule stopped by the first ``on`` must not be "remembered" stopped).

``maintenance off`` (and the ``validibot_maintenance`` sensor once ``--until`` has passed)
puts every recorded schedule's stored state back as it was, from the instance alone, then
deletes the row; ``off`` again finds no row and does nothing. A schedule that was running is
restarted from now (``start_timestamp``), as ``instance.start_schedule`` does: ticks that fell
inside the maintenance window are not run afterwards.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import dagster as dg

from validibot_ops.dagster_internals import (
    InstigatorState,
    InstigatorStatus,
    ScheduleInstigatorData,
)
from validibot_ops.schedule_state import InstanceSchedules

NO_STORED_STATE = None
"""A schedule the instance holds no state for follows its code's ``default_status``."""


def snapshot(schedules: InstanceSchedules) -> dict[str, dict[str, Any]]:
    """Each schedule's stored state, as ``maintenance off`` will need it without the workspace."""
    states: dict[str, dict[str, Any]] = {}
    for name, remote in sorted(schedules.remote.items()):
        origin_id, selector_id = remote.get_remote_origin_id(), remote.selector_id
        stored = schedules.instance.get_instigator_state(origin_id, selector_id)
        states[name] = {
            "status": schedules.status(name),
            "stored": stored.status.value if stored is not None else NO_STORED_STATE,
            "origin_id": origin_id,
            "selector_id": selector_id,
        }
    return states


def pause_all(schedules: InstanceSchedules) -> list[str]:
    """Stop every running schedule; one line per schedule stopped."""
    stopped = []
    for name in sorted(schedules.remote):
        if schedules.status(name) == "RUNNING":
            schedules.stop(name)
            stopped.append(f"stopped {name}")
    return stopped


def restore(instance: dg.DagsterInstance, prior: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Put each recorded schedule's stored state back; one line per schedule changed.

    Works from the instance alone (no code location), so the sensor can run it at ``until``.
    """
    changed = []
    for name, before in sorted(prior.items()):
        origin_id, selector_id = before["origin_id"], before["selector_id"]
        stored = instance.get_instigator_state(origin_id, selector_id)
        now_value = stored.status.value if stored is not None else NO_STORED_STATE
        if now_value == before["stored"]:
            continue
        if before["stored"] is NO_STORED_STATE:
            instance.delete_instigator_state(origin_id, selector_id)
        elif stored is not None:
            instance.update_instigator_state(_with_status(stored, before["stored"]))
        else:  # the state vanished since `on` (e.g. a reset in the UI): nothing to restore onto
            continue
        changed.append(
            f"restored {name}: {now_value or 'default'} -> {before['stored'] or 'default'}"
        )
    return changed


def _with_status(stored: InstigatorState, status: str) -> InstigatorState:
    data = stored.instigator_data
    cron = data.cron_schedule if isinstance(data, ScheduleInstigatorData) else None
    # A restarted schedule counts its ticks from now, like instance.start_schedule.
    start = time.time() if status != InstigatorStatus.STOPPED.value else None
    restored = stored.with_status(InstigatorStatus(status))
    if cron is None:
        return restored
    return restored.with_data(ScheduleInstigatorData(cron, start))


def status_lines(window: Any, now: datetime) -> list[str]:
    """``maintenance status``: on/off, the reason, author and end, and the recorded states."""
    from validibot.operations import maintenance

    if window is None:
        return ["maintenance: off"]
    state = "on" if maintenance.is_active(window, now) else "ended (restore pending)"
    lines = [f"maintenance {state}: {maintenance.window_text(window)}"]
    for name, before in sorted(window.prior_states.items()):
        lines.append(f"  {name}: was {before['status']} ({before['stored'] or 'default'})")
    return lines


# -- the `validibot-ops maintenance` command --------------------------------------------------


def add_parser(sub: Any, workspace_help: str) -> None:
    """``maintenance on|off|status`` under the ``validibot-ops`` parser."""
    parser = sub.add_parser(
        "maintenance",
        help="pause every schedule and the HTTP trigger, then restore them exactly",
        description="Works on $DAGSTER_HOME's instance (as sync-schedules) and the Django "
        "database (DJANGO_SETTINGS_MODULE, default config.settings.local), where maintenance "
        "mode is recorded. Idempotent: `on` twice keeps the first recorded states; `off` "
        "twice is a no-op.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    on = actions.add_parser("on", help="record every schedule's state, then stop them all")
    on.add_argument("--reason", required=True, help="why (shown in the UI, doctor, the 409)")
    on.add_argument("--author", required=True, help="who")
    on.add_argument(
        "--until",
        default=None,
        help="ISO 8601 time with a timezone (2099-12-03T06:00:00Z): the validibot_maintenance "
        "sensor restores the schedules then",
    )
    actions.add_parser("off", help="restore the recorded schedule states and end maintenance")
    actions.add_parser("status", help="whether maintenance is on, and the recorded states")
    on.add_argument("--workspace", "-w", action="append", default=[], help=workspace_help)
    parser.set_defaults(func=cmd_maintenance)


def cmd_maintenance(args: Any) -> int:
    """Exit codes: 0 done, 2 bad input or the workspace/database could not be used."""
    import os
    from datetime import UTC
    from pathlib import Path

    from validibot_ops.schedule_state import DEFAULT_WORKSPACE, ScheduleStateError

    workspace = [Path(p) for p in getattr(args, "workspace", [])] or [DEFAULT_WORKSPACE]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    import logging

    import django

    django.setup()
    # Dagster's SQLite storage runs alembic on first use; its INFO chatter is not news.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from django.db import DatabaseError

    from validibot.operations import maintenance

    now = datetime.now(UTC)
    try:
        if args.action == "status":
            lines = status_lines(maintenance.current(), now)
        elif args.action == "on":
            request = maintenance.validate_request(args.reason, args.author, args.until, now)
            _use_instance(workspace)
            lines = _on(request, workspace, now)
        else:
            _use_instance(())
            lines = _off()
    except maintenance.MaintenanceInputError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except ScheduleStateError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except DatabaseError as exc:
        sys.stderr.write(f"error: {type(exc).__name__}: {exc}\n")
        return 2
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    return 0


def _use_instance(workspace: Any) -> None:
    """Refuse a DAGSTER_HOME or workspace file that is not there, in one line."""
    from validibot_ops.schedule_state import ScheduleStateError, use_instance

    problem = use_instance(workspace)
    if problem:
        raise ScheduleStateError(problem)


def _on(request: Any, workspace: list[Any], now: datetime) -> list[str]:
    from validibot_ops.schedule_state import instance_schedules

    with dg.DagsterInstance.get() as instance, instance_schedules(instance, workspace) as schedules:
        return turn_on(schedules, request, now)


def _off() -> list[str]:
    with dg.DagsterInstance.get() as instance:
        return turn_off(instance)


def turn_on(schedules: InstanceSchedules, request: Any, now: datetime) -> list[str]:
    """Record the states (committed first), then stop every running schedule."""
    from validibot.operations import maintenance

    window, new = maintenance.record(request, snapshot(schedules), now)
    lines = pause_all(schedules)
    head = "maintenance on" if new else "maintenance already on (first recorded states kept)"
    return [
        f"{head}: {maintenance.window_text(window)}",
        *lines,
        f"{len(lines)} schedule(s) stopped",
    ]


def turn_off(instance: dg.DagsterInstance) -> list[str]:
    """Restore the recorded states, then end maintenance; a no-op when it is off."""
    from validibot.operations import maintenance

    window = maintenance.current()
    if window is None:
        return ["maintenance is off: nothing to restore"]
    lines = restore(instance, window.prior_states)
    maintenance.finish()
    return [*lines, f"maintenance off: {len(lines)} schedule(s) restored"]
