"""The text form of the DST preview (``scheduled_task_status --preview``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC

from validibot.tasks import dst
from validibot.tasks.dst_preview import TaskPreview

RUN_SHOWN = 3
"""A run of more marked ticks than this (an every-5-minutes cron's repeated hour) is elided."""


def preview_lines(previews: list[TaskPreview]) -> Iterator[str]:
    """Per task: a header, the next ticks, then each clock change with the ticks it moves."""
    for index, item in enumerate(previews):
        if index:
            yield ""
        state = "" if item.enabled else ", stopped"
        yield (
            f"{item.task.id}  {item.cron}  {item.task.timezone}  ({item.cron_source}{state}); "
            f"until {item.end:%Y-%m-%d}"
        )
        yield from (_tick_line("next", t) for t in item.next_ticks)
        if not item.changes:
            yield "  no clock change in this period"
        for change, ticks in item.changes:
            local = change.at.astimezone(ticks[-1].at.tzinfo if ticks[-1].at else UTC)
            start, end = change.wall_window
            yield (
                f"  clock change {local:%Y-%m-%d %H:%M %Z} ({change.kind}): "
                f"{start:%H:%M}-{end:%H:%M} "
                + ("does not exist" if change.kind == "spring forward" else "occurs twice")
            )
            yield from _elided(ticks)
        for warning in item.warnings:
            yield f"  warning: {warning}"


def _elided(ticks: list[dst.Tick]) -> Iterator[str]:
    lines = [_tick_line(t.marker or "", t) for t in ticks]
    start = 0
    while start < len(ticks):
        stop = start
        while stop < len(ticks) and ticks[stop].marker == ticks[start].marker:
            stop += 1
        if ticks[start].marker and stop - start > RUN_SHOWN:
            yield lines[start]
            yield f"    ... {stop - start - 2} more {ticks[start].marker} ..."
            yield lines[stop - 1]
        else:
            yield from lines[start:stop]
        start = stop


def _tick_line(label: str, tick: dst.Tick) -> str:
    if tick.at is None:
        when = f"{tick.wall:%Y-%m-%d %H:%M} (not run)".ljust(47)
    else:
        utc = tick.at.astimezone(UTC)
        when = f"{tick.at:%Y-%m-%d %H:%M %Z}".ljust(22) + f"= {utc:%Y-%m-%d %H:%M} UTC".ljust(25)
    note = tick.note()
    return f"    {label.ljust(8)}{when}{'  ' + note if note else ''}".rstrip()
