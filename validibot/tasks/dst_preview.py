"""The DST preview and lint of every scheduled task: the cron Dagster runs, around each change.

``scheduled_task_status --preview`` and ``doctor`` read this; the rule itself is in
:mod:`validibot.tasks.dst`. Django-free and Dagster-free.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from validibot.tasks import dst
from validibot.tasks.overrides import ScheduleOverride
from validibot.tasks.registry import MaintenanceTask

CHANGES_SHOWN = 2
"""By default the preview reaches past this many clock changes of each task's zone."""
MAX_DAYS = 800
"""The longest horizon ``--days`` accepts (two years and more: every zone changes twice)."""
DAYS_WITHOUT_CHANGES = 7
"""The default horizon of a zone that does not change its clocks within :data:`MAX_DAYS`."""
NEXT_SHOWN = 3
"""Ordinary ticks listed at the top of each task's preview."""


@dataclass(frozen=True)
class TaskPreview:
    """One task's preview: its effective cron, next ticks and the ticks around each change."""

    task: MaintenanceTask
    cron: str
    cron_source: str
    enabled: bool
    start: datetime
    end: datetime
    next_ticks: list[dst.Tick]
    changes: list[tuple[dst.ClockChange, list[dst.Tick]]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The preview as JSON-ready data (times as ISO 8601 strings)."""
        return {
            "task": self.task.id,
            "cron": self.cron,
            "cron_source": self.cron_source,
            "timezone": self.task.timezone,
            "enabled": self.enabled,
            "from": self.start.isoformat(),
            "until": self.end.isoformat(),
            "next": [tick_json(t) for t in self.next_ticks],
            "clock_changes": [
                {
                    "at_utc": change.at.isoformat(),
                    "kind": change.kind,
                    "offset_before": _offset(change.offset_before),
                    "offset_after": _offset(change.offset_after),
                    "local_times": [f"{t:%H:%M}" for t in change.wall_window],
                    "ticks": [tick_json(t) for t in ticks],
                }
                for change, ticks in self.changes
            ],
            "warnings": self.warnings,
        }


def tick_json(tick: dst.Tick) -> dict[str, Any]:
    """One tick: the local time the cron names, when it runs (local, UTC), the marker."""
    return {
        "named": tick.wall.isoformat(timespec="minutes"),
        "local": tick.at.isoformat() if tick.at else None,
        "utc": tick.at.astimezone(UTC).isoformat() if tick.at else None,
        "marker": tick.marker,
        "note": tick.note(),
    }


def _offset(delta: timedelta) -> str:
    sign = "-" if delta < timedelta(0) else "+"
    minutes = abs(int(delta.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def check_days(days: int | None) -> None:
    """Refuse a horizon outside 1..:data:`MAX_DAYS` days, naming the option."""
    if days is not None and not 1 <= days <= MAX_DAYS:
        raise ValueError(f"--days must be a whole number from 1 to {MAX_DAYS}, got {days}")


def horizon(timezone: str, now: datetime, days: int | None) -> datetime:
    """Where the preview stops: ``days`` ahead, else a day past the zone's second change."""
    check_days(days)
    if days is not None:
        return now + timedelta(days=days)
    changes = dst.next_clock_changes(timezone, now, CHANGES_SHOWN, timedelta(days=MAX_DAYS))
    if len(changes) < CHANGES_SHOWN:
        return now + timedelta(days=DAYS_WITHOUT_CHANGES if not changes else MAX_DAYS)
    return changes[-1].at + timedelta(days=1)


def effective_cron(task: MaintenanceTask, override: ScheduleOverride | None) -> tuple[str, str]:
    """The cron Dagster schedules and where it comes from (``registry`` or the overrides file)."""
    if override is not None and override.cron is not None:
        return override.cron, f"override ({override.source or 'incident overrides file'})"
    return task.cron, "registry"


def preview_task(
    task: MaintenanceTask,
    override: ScheduleOverride | None,
    now: datetime,
    days: int | None = None,
) -> TaskPreview:
    """The task's ticks from ``now`` across its zone's next clock changes (or ``days``)."""
    cron, source = effective_cron(task, override)
    enabled = task.enabled
    if override is not None and override.enabled is not None:
        enabled = override.enabled
    end = horizon(task.timezone, now, days)
    ticks = dst.iter_ticks(cron, task.timezone, now)
    next_ticks = [t for _, t in zip(range(NEXT_SHOWN), ticks, strict=False)]
    changes = [
        (change, dst.affected_ticks(cron, task.timezone, change))
        for change in dst.clock_changes(task.timezone, now, end)
    ]
    warnings = task.warnings(cron)
    return TaskPreview(task, cron, source, enabled, now, end, next_ticks, changes, warnings)


def preview(
    tasks: Sequence[MaintenanceTask],
    overrides: Mapping[str, ScheduleOverride],
    now: datetime,
    days: int | None = None,
) -> list[TaskPreview]:
    """:func:`preview_task` for each task, with its incident override if any."""
    check_days(days)
    return [preview_task(t, overrides.get(t.id), now, days) for t in tasks]


def clock_change_warnings(
    tasks: Sequence[MaintenanceTask], overrides: Mapping[str, ScheduleOverride]
) -> list[str]:
    """Lint every task's registry cron and, where one is in force, its override's cron."""
    found: list[str] = []
    for task in tasks:
        found += task.warnings()
        override = overrides.get(task.id)
        if override is not None and override.cron is not None:
            where = override.source or "incident overrides file"
            found += [f"{where}: {w}" for w in task.warnings(override.cron)]
    return found
