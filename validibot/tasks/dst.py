"""Fire times across clock changes, as Dagster's scheduler runs them: the DST preview and lint.

Dagster 1.13's scheduler (``dagster._utils.schedules.cron_string_iterator``, which the daemon
reads ticks from) treats a local time named by a cron that a clock change removes or repeats
like this (tests/validibot_ops/test_dst_preview.py checks every rule against Dagster itself):

* **Every-hour crons** (hour field ``*``, e.g. ``0 * * * *``, ``*/5 * * * *``): a time that does
  not exist (spring forward) is *skipped*; a time that occurs twice (fall back) runs *twice*, once
  at each instant.
* **Crons with fixed hours** (``30 2 * * *``, ``0 */6 * * *``): a time that does not exist is
  *shifted*, never dropped. In the local hours 01:00-03:59, where nearly every zone changes its
  clocks, it runs at the start of the hour plus the zone's DST offset (02:30 -> 03:00 in
  Europe/Berlin); outside them it runs at the same instant the old offset would give (00:30 ->
  01:30). A time that occurs twice runs *once*: at the second occurrence (the later instant),
  except for a plain daily, weekly or monthly cron at an hour outside 01:00-03:59, which runs
  at the first.

One known difference: in Australia/Lord_Howe, whose clocks change by 30 minutes, Dagster
computes every-hour crons in UTC and fires them half an hour off the named minute after a
change; this module gives the named minutes.

This module imports neither Django nor Dagster, so the registry, the ``scheduled_task_status``
preview and ``doctor`` share one rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from croniter import croniter

SHIFTED = "shifted"
"""The named local time does not exist (spring forward); the tick runs at another time."""
SKIPPED = "skipped"
"""The named local time does not exist and an every-hour cron does not run it."""
ONCE = "once"
"""The named local time occurs twice (fall back); the tick runs at one of the two."""
TWICE = "twice"
"""The named local time occurs twice and an every-hour cron runs at both."""

DAGSTER_DST_HOURS = frozenset({1, 2, 3})
"""Local hours in which Dagster moves a tick out of a gap or onto the later of two instants."""

LINT_HORIZON = timedelta(days=2 * 366)
"""How far ahead :func:`lint` looks for clock changes."""

_SCAN_STEP = timedelta(days=1)  # no zone changes its clocks twice within a day


@dataclass(frozen=True)
class Tick:
    """One tick the cron names: when it runs (``at``, ``None`` if skipped) and why it moved.

    Attributes:
        wall: the local wall-clock time the cron names (naive).
        at: when Dagster runs it, in the cron's zone (aware); ``None`` when it is skipped.
        marker: ``None``, or one of ``shifted``, ``skipped``, ``once``, ``twice``.
        occurrence: for ``once``/``twice``: 1 for the first of the two instants, 2 for the second.
    """

    wall: datetime
    at: datetime | None
    marker: str | None = None
    occurrence: int = 0

    def note(self) -> str:
        """Why this tick is marked, in words ("" for an ordinary tick)."""
        hm = f"{self.wall:%H:%M}"
        if self.marker == SHIFTED and self.at is not None:
            return f"{hm} does not exist (spring forward), runs at {self.at:%H:%M}"
        if self.marker == SKIPPED:
            return f"{hm} does not exist (spring forward), skipped"
        which = "first" if self.occurrence == 1 else "second"
        if self.marker == ONCE:
            return f"{hm} occurs twice (fall back), runs once, at the {which}"
        if self.marker == TWICE:
            return f"{hm} occurs twice (fall back), runs at both; this is the {which}"
        return ""


@dataclass(frozen=True)
class ClockChange:
    """One change of a zone's UTC offset.

    Attributes:
        at: the instant of the change (UTC).
        offset_before: the zone's UTC offset just before it.
        offset_after: the zone's UTC offset from it on.
    """

    at: datetime
    offset_before: timedelta
    offset_after: timedelta

    @property
    def kind(self) -> str:
        """``spring forward`` (clocks jump ahead, a gap) or ``fall back`` (an overlap)."""
        return "spring forward" if self.offset_after > self.offset_before else "fall back"

    @property
    def wall_window(self) -> tuple[datetime, datetime]:
        """The naive local times that do not exist (spring) or occur twice (fall): [start, end)."""
        naive = self.at.replace(tzinfo=None)
        before, after = naive + self.offset_before, naive + self.offset_after
        return (before, after) if before < after else (after, before)


def every_hour(cron: str) -> bool:
    """Whether the cron's hour field is ``*`` (Dagster's "repeats every hour")."""
    fields = croniter.expand(cron)[0]
    return fields[1] == ["*"]


def _plain_calendar_cron(cron: str) -> bool:
    """Whether Dagster computes this cron with its daily/weekly/monthly fast path.

    The fast path keeps the first of two repeated instants outside the hours in
    :data:`DAGSTER_DST_HOURS`; its general path always keeps the second.
    """
    fields, nth = croniter.expand(cron)[:2]
    numeric = [len(f) == 1 and isinstance(f[0], int) for f in fields]
    wild = [f == ["*"] for f in fields]
    if nth or not (numeric[0] and numeric[1]):
        return False
    monthly = numeric[2] and wild[3] and wild[4] and int(fields[2][0]) <= 28
    weekly = numeric[4] and wild[2] and wild[3]
    daily = wild[2] and wild[3] and (wild[4] or all(isinstance(d, int) for d in fields[4]))
    return bool(monthly or weekly or daily)


def _ticks_for(wall: datetime, zone: ZoneInfo, hourly: bool, plain: bool) -> list[Tick]:
    """The ticks Dagster makes of one naive wall time the cron names."""
    first = wall.replace(tzinfo=zone, fold=0)
    second = wall.replace(tzinfo=zone, fold=1)
    before, after = first.utcoffset(), second.utcoffset()
    if before == after:
        return [Tick(wall, first)]
    assert before is not None and after is not None
    if before < after:  # a gap: fold=0 reads the wall time with the offset before the change
        if hourly:
            return [Tick(wall, None, SKIPPED)]
        if wall.hour in DAGSTER_DST_HOURS:
            dst = (first + timedelta(hours=1)).dst() or timedelta(0)
            moved = wall.replace(minute=0, second=0, microsecond=0) + dst
            # Where that is still in the gap (a zero or negative DST offset, as in
            # Europe/Dublin), the fast path then reads it with the new offset.
            fold = 1 if plain and moved.hour in DAGSTER_DST_HOURS else 0
            return [Tick(wall, _real(moved.replace(tzinfo=zone, fold=fold)), SHIFTED)]
        return [Tick(wall, _real(first), SHIFTED)]
    if hourly:
        return [Tick(wall, first, TWICE, 1), Tick(wall, second, TWICE, 2)]
    if plain and wall.hour not in DAGSTER_DST_HOURS:
        return [Tick(wall, first, ONCE, 1)]
    return [Tick(wall, second, ONCE, 2)]


def _real(moment: datetime) -> datetime:
    """The same instant as a local time that exists (a time in a gap reads as after it)."""
    zone = moment.tzinfo
    return datetime.fromtimestamp(moment.timestamp(), zone)


def iter_ticks(cron: str, timezone: str, after: datetime) -> Iterator[Tick]:
    """Every tick of ``cron`` in ``timezone`` after ``after``, skipped ones included, in order.

    A tick whose instant is not later than the previous one is dropped, as Dagster does (two
    times in one gap shift to the same instant and run once).
    """
    zone = ZoneInfo(timezone)
    hourly, plain = every_hour(cron), _plain_calendar_cron(cron)
    start_wall = after.astimezone(zone).replace(tzinfo=None)
    # An hour back, as Dagster does, so a repeated time just before ``after`` is considered.
    itr = croniter(cron, start_wall - timedelta(hours=1))
    last = after.timestamp()
    while True:
        wall = itr.get_next(datetime)
        ticks = _ticks_for(wall, zone, hourly, plain)
        while ticks[-1].marker == TWICE:
            # Both instants of every repeated time, and the first time after them, in order.
            wall = itr.get_next(datetime)
            ticks += _ticks_for(wall, zone, hourly, plain)
        ticks.sort(key=lambda t: t.at.timestamp() if t.at else 0.0)
        for tick in ticks:
            if tick.at is None:
                if wall > start_wall:
                    yield tick
            elif tick.at.timestamp() > last:
                last = tick.at.timestamp()
                yield tick


def iter_fire_times(cron: str, timezone: str, after: datetime) -> Iterator[datetime]:
    """When Dagster runs ``cron`` in ``timezone`` after ``after`` (aware, in the zone)."""
    for tick in iter_ticks(cron, timezone, after):
        if tick.at is not None:
            yield tick.at


def clock_changes(timezone: str, start: datetime, end: datetime) -> list[ClockChange]:
    """The zone's UTC-offset changes in [start, end), in order (none for UTC)."""
    zone = ZoneInfo(timezone)
    changes: list[ClockChange] = []
    low = start.astimezone(UTC)
    while low < end:
        high = min(low + _SCAN_STEP, end.astimezone(UTC))
        if low.astimezone(zone).utcoffset() != high.astimezone(zone).utcoffset():
            changes.append(_bisect(zone, low, high))
        low = high
    return changes


def _bisect(zone: ZoneInfo, low: datetime, high: datetime) -> ClockChange:
    """The change between ``low`` (old offset) and ``high`` (new offset), to the second."""
    before = low.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        mid = low + (high - low) / 2
        mid = mid.replace(microsecond=0)
        if mid.astimezone(zone).utcoffset() == before:
            low = mid
        else:
            high = mid
    after = high.astimezone(zone).utcoffset()
    assert before is not None and after is not None
    return ClockChange(high, before, after)


def next_clock_changes(
    timezone: str, after: datetime, count: int, within: timedelta
) -> list[ClockChange]:
    """The next ``count`` clock changes of the zone after ``after``, looking ``within`` ahead."""
    return clock_changes(timezone, after, after + within)[:count]


def affected_ticks(cron: str, timezone: str, change: ClockChange) -> list[Tick]:
    """The ticks around one clock change: the last before it, those it moves, the first after.

    Returns every tick whose wall time the change removes or repeats, framed by the tick
    just before the change's window and the first tick after it.
    """
    zone = ZoneInfo(timezone)
    start, end = change.wall_window
    previous = croniter(cron, start).get_prev(datetime)
    begin = _real(previous.replace(tzinfo=zone, fold=0)) - timedelta(seconds=1)
    ticks = []
    for tick in iter_ticks(cron, timezone, begin):
        ticks.append(tick)
        if tick.at is not None and tick.wall >= end and tick.at >= change.at:
            return ticks
    raise AssertionError("iter_ticks is endless")  # pragma: no cover


@lru_cache(maxsize=512)
def _lint(cron: str, timezone: str, day: datetime) -> tuple[str, ...]:
    if every_hour(cron):
        return ()  # skipping and doubling hourly ticks keeps them an hour apart: intended
    found: dict[str, tuple[ClockChange, Tick]] = {}
    for change in clock_changes(timezone, day, day + LINT_HORIZON):
        start, end = change.wall_window
        wall = croniter(cron, start - timedelta(minutes=1)).get_next(datetime)
        if wall < end and change.kind not in found:
            tick = _ticks_for(wall, ZoneInfo(timezone), False, _plain_calendar_cron(cron))[0]
            found[change.kind] = (change, tick)
    return tuple(
        f"cron {cron!r} in {timezone}, on {tick.wall:%Y-%m-%d}: {tick.note()}; a time outside "
        f"{change.wall_window[0]:%H:%M}-{change.wall_window[1]:%H:%M} runs at the same local "
        "time every day"
        for change, tick in found.values()
    )


def lint(cron: str, timezone: str, now: datetime | None = None) -> list[str]:
    """Warnings for a cron whose fixed hour falls in a gap or overlap of the zone's clock
    changes in the next two years (at most one per kind of change, the first found).

    Every-hour crons are not warned about: their skipped and doubled ticks are by design.
    """
    now = now or datetime.now(UTC)
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return list(_lint(cron, timezone, day))
