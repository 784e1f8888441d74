"""The daily history table: a run is rolled up once, and ``scheduled_task_status --history``
reads it back per day, week, month or in total (no Dagster involved: these runs are gone)."""

from __future__ import annotations

import json
from datetime import date
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from validibot.operations.history import RunFacts, roll_up
from validibot.operations.models import RolledUpRun, TaskHistoryDay

pytestmark = pytest.mark.django_db

JULY_1, JULY_2, AUGUST_3 = date(2026, 7, 1), date(2026, 7, 2), date(2026, 8, 3)


def fact(run_id: str, day: date, status: str = "SUCCESS", dry_run: bool = False, **counts):
    return RunFacts(run_id, "purge_expired_outputs", day, status, dry_run, counts, events=15)


def test_a_run_rolled_up_twice_is_counted_once():
    first = [fact("r1", JULY_1, purged=3, batches=1), fact("r2", JULY_1, "FAILURE", failed=1)]
    assert len(roll_up(first)) == 2
    assert roll_up([*first, fact("r3", JULY_1, dry_run=True, purged=9)]) == [
        fact("r3", JULY_1, dry_run=True, purged=9)
    ]

    day = TaskHistoryDay.objects.get(task="purge_expired_outputs", day=JULY_1)
    assert (day.runs, day.failures, day.dry_runs, day.rows_affected) == (2, 1, 1, 4)
    assert day.counts == {"purged": 3, "batches": 1, "failed": 1}
    assert set(RolledUpRun.objects.values_list("run_id", flat=True)) == {"r1", "r2", "r3"}


def status(*args: str) -> str:
    out = StringIO()
    call_command("scheduled_task_status", "--history", *args, stdout=out)
    return out.getvalue()


def test_history_totals_per_period_and_task():
    roll_up(
        [
            fact("a", JULY_1, purged=3),
            fact("b", JULY_2, purged=4),
            fact("c", AUGUST_3, "FAILURE", purged=1),
        ]
    )
    TaskHistoryDay.objects.create(task="clear_sessions", day=JULY_2, runs=1, rows_affected=8)

    months = json.loads(status("--by", "month", "--json", "--task", "purge_expired_outputs"))
    assert [(r["period"], r["runs"], r["failures"], r["rows_affected"]) for r in months] == [
        ("2026-07", 2, 0, 7),
        ("2026-08", 1, 1, 1),
    ]
    assert months[0]["counts"] == {"purged": 7}

    quarter = json.loads(
        status("--by", "total", "--since", "2026-07-01", "--until", "2026-07-02", "--json")
    )
    assert {(r["task"], r["rows_affected"]) for r in quarter} == {
        ("purge_expired_outputs", 7),
        ("clear_sessions", 8),
    }

    table = status("--by", "week").splitlines()
    assert table[0].split() == [
        "period",
        "task",
        "runs",
        "failed",
        "canceled",
        "dry",
        "runs",
        "rows",
        "affected",
    ]
    assert "2026-W27  clear_sessions" in table[1] or "2026-W27  clear_sessions" in table[2]
    assert any("purged=7" in line for line in table)


def test_history_says_when_there_is_none_and_refuses_a_bad_date():
    assert "no rolled-up history yet" in status()
    with pytest.raises(CommandError, match="--since"):
        status("--since", "last quarter")


def test_history_refuses_an_unknown_task_id_suggesting_the_closest():
    """Issue 28 point 7: ``--history --task clear_sesions`` printed an empty history."""
    with pytest.raises(CommandError, match=r"unknown task id\(s\): clear_sesions \(did you mean "):
        status("--task", "clear_sesions")
    with pytest.raises(CommandError, match="'clear_sessions'"):
        status("--task", "clear_sesions")
