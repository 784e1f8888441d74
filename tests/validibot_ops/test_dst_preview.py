"""The DST preview against Dagster itself: the ticks the daemon makes, and the schedule's answer.

For each cron and zone, the preview's ticks across a clock change are compared with the ticks
Dagster's scheduler iterates (``schedule_execution_time_iterator``, which the daemon reads
through ``RemoteSchedule.execution_time_iterator``) for the schedule the code location
generates, and the schedule is evaluated at each previewed instant. Nothing is mocked.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from dagster._utils.schedules import cron_string_iterator, schedule_execution_time_iterator

from validibot.tasks import dst
from validibot.tasks.dst_preview import preview_task
from validibot.tasks.registry import MaintenanceTask, get_task, register
from validibot_ops.definitions import build_definitions

# The generated schedule evaluated at every previewed instant, per case: not in the fast loop.
pytestmark = pytest.mark.slow

BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"
SPRING_BERLIN, FALL_BERLIN = datetime(2027, 3, 25, 12), datetime(2026, 10, 22, 12)
SPRING_NY, FALL_NY = datetime(2027, 3, 11, 12), datetime(2026, 10, 29, 12)

CASES = [
    # (cron, zone, naive local start (the preview covers 6 days), markers the change produces)
    ("30 2 * * *", BERLIN, SPRING_BERLIN, {dst.SHIFTED}),
    ("30 2 * * *", BERLIN, FALL_BERLIN, {dst.ONCE}),
    ("30 1 * * *", BERLIN, FALL_BERLIN, set()),  # Berlin repeats 02:00-03:00, not 01:xx
    ("30 1 * * *", NEW_YORK, FALL_NY, {dst.ONCE}),
    ("30 2 * * *", NEW_YORK, SPRING_NY, {dst.SHIFTED}),
    ("0 2 * * *", NEW_YORK, FALL_NY, set()),
    ("0 * * * *", BERLIN, SPRING_BERLIN, {dst.SKIPPED}),
    ("0 * * * *", BERLIN, FALL_BERLIN, {dst.TWICE}),
    ("0 * * * *", NEW_YORK, FALL_NY, {dst.TWICE}),
    ("*/20 * * * *", NEW_YORK, SPRING_NY, {dst.SKIPPED}),
    ("*/20 * * * *", NEW_YORK, FALL_NY, {dst.TWICE}),
    ("0 */6 * * *", BERLIN, FALL_BERLIN, set()),
    ("0 2 * * 0", BERLIN, FALL_BERLIN, {dst.ONCE}),  # weekly, on the change's Sunday
    ("30 2 * * *", "UTC", SPRING_BERLIN, set()),
]


@pytest.fixture(scope="module")
def instance():
    """One Dagster instance for the module: Dagster's definitions loader remembers the last
    instance it saw, so a per-test instance would be gone when the next test loads."""
    with dg.instance_for_test() as instance:
        yield instance


def _schedule_for(cron: str, zone: str) -> tuple[MaintenanceTask, dg.ScheduleDefinition]:
    register(
        MaintenanceTask(id="dst_case", name="DST", command="noop_task", cron=cron, timezone=zone)
    )
    schedule = build_definitions().resolve_schedule_def("dst_case_schedule")
    task = get_task("dst_case")
    assert task is not None
    return task, schedule


@pytest.mark.parametrize(("cron", "zone", "start", "markers"), CASES)
def test_the_preview_is_the_ticks_dagster_makes(instance, cron, zone, start, markers):
    task, schedule = _schedule_for(cron, zone)
    now = start.replace(tzinfo=ZoneInfo(zone))
    preview = preview_task(task, None, now, days=6)
    previewed = [t for _, ticks in preview.changes for t in ticks] + preview.next_ticks
    assert {t.marker for t in previewed} - {None} == markers

    # Every fire time in the window (from the tick the preview shows before a change), as the
    # daemon iterates them for the generated schedule.
    shown = [t.at for t in previewed if t.at is not None]
    begin = min([now, *shown]) - timedelta(seconds=1)
    end = max([preview.end, *shown]) + timedelta(seconds=1)
    ours = list(itertools.takewhile(lambda at: at < end, dst.iter_fire_times(cron, zone, begin)))
    daemon = list(
        itertools.takewhile(
            lambda at: at < end,
            schedule_execution_time_iterator(
                begin.timestamp() + 1, schedule.cron_schedule, schedule.execution_timezone
            ),
        )
    )
    assert [t.timestamp() for t in ours] == [t.timestamp() for t in daemon]
    # Each previewed run is one of those ticks; each skipped one is none of them.
    instants = {t.timestamp() for t in daemon}
    for tick in previewed:
        if tick.at is None:
            assert all(d.replace(tzinfo=None) != tick.wall for d in daemon), tick
        else:
            assert tick.at.timestamp() in instants, tick

    # The schedule, evaluated at each previewed instant, asks for one run with its own key.
    runs = list({t.at.timestamp(): t for t in previewed if t.at is not None}.values())
    keys = []
    for tick in runs:
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick.at)
        [request] = schedule.evaluate_tick(context).run_requests
        keys.append(request.run_key)
    assert len(set(keys)) == len(runs), "two previewed runs would share one run key"


@pytest.mark.parametrize(
    ("cron", "zone", "start"),
    [
        ("30 23 * * *", "America/Santiago", datetime(2026, 4, 1)),  # overlap outside 01-03
        ("30 0 * * *", "America/Santiago", datetime(2026, 9, 3)),  # gap at midnight
        ("30 1 * * *", "Europe/Dublin", datetime(2026, 3, 26)),  # negative DST in winter
        ("45 2 * * *", "Pacific/Chatham", datetime(2026, 9, 24)),  # changes at 02:45
        ("0 0 * * *", "America/Havana", datetime(2026, 10, 29)),
        ("30 0 * * *", "Asia/Beirut", datetime(2026, 3, 26)),
        ("0,30 2 * * *", BERLIN, SPRING_BERLIN),  # two gap times shift to one instant
        ("*/5 * * * *", "Australia/Sydney", datetime(2026, 4, 3)),
    ],
)
def test_the_rule_matches_dagster_where_it_differs_by_hour_and_path(cron, zone, start):
    """Dagster's rule depends on the local hour (01-03 or not) and on the cron's shape."""
    begin = start.replace(tzinfo=ZoneInfo(zone))
    count = 400 if cron.startswith("*/") else 8
    ours = itertools.islice(dst.iter_fire_times(cron, zone, begin), count)
    dagster = itertools.islice(cron_string_iterator(begin.timestamp() + 1, cron, zone), count)
    assert [t.timestamp() for t in ours] == [t.timestamp() for t in dagster]


def test_clock_changes_are_found_to_the_second():
    changes = dst.clock_changes(
        BERLIN, datetime(2027, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC)
    )
    assert [(c.at, c.kind) for c in changes] == [
        (datetime(2027, 3, 28, 1, tzinfo=UTC), "spring forward"),
        (datetime(2027, 10, 31, 1, tzinfo=UTC), "fall back"),
    ]
    assert [c.wall_window for c in changes][0] == (
        datetime(2027, 3, 28, 2),
        datetime(2027, 3, 28, 3),
    )
    assert (
        dst.clock_changes("UTC", datetime(2027, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC))
        == []
    )
