"""``scheduled_task_status --history``: the rolled-up runs of the daily history table.

The table (:class:`~validibot.operations.models.TaskHistoryDay`) holds what
``prune_dagster_history`` rolled up before deleting runs from Dagster, so it covers the days
older than the retention window; the recent runs are in Dagster itself (the UI, or
``scheduled_task_status`` without ``--history``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from validibot.operations.models import TaskHistoryDay

PERIODS = ("day", "week", "month", "total")
TOTALS = ("runs", "failures", "canceled", "dry_runs", "rows_affected")


def period_of(day: date, by: str) -> str:
    """The label of the period ``day`` falls in: ``2026-07-01``, ``2026-W27``, ``2026-07``."""
    if by == "day":
        return day.isoformat()
    if by == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if by == "month":
        return f"{day:%Y-%m}"
    return "total"


def history_rows(
    *,
    tasks: Iterable[str] = (),
    since: date | None = None,
    until: date | None = None,
    by: str = "day",
) -> list[dict[str, Any]]:
    """Totals per period and task, oldest period first (``until`` is inclusive)."""
    days = TaskHistoryDay.objects.all()
    if tasks:
        days = days.filter(task__in=list(tasks))
    if since:
        days = days.filter(day__gte=since)
    if until:
        days = days.filter(day__lt=until + timedelta(days=1))
    grouped: dict[tuple[str, str], dict[str, Any]] = {}
    for row in days.order_by("day", "task"):
        key = (period_of(row.day, by), row.task)
        total = grouped.setdefault(
            key, {"period": key[0], "task": row.task, **dict.fromkeys(TOTALS, 0), "counts": {}}
        )
        for name in TOTALS:
            total[name] += getattr(row, name)
        for name, value in (row.counts or {}).items():
            total["counts"][name] = total["counts"].get(name, 0) + value
    return list(grouped.values())


def history_table(rows: list[dict[str, Any]]) -> list[str]:
    """The rows as aligned text lines (a header, then one line per period and task)."""
    header = ("period", "task", "runs", "failed", "canceled", "dry runs", "rows affected")
    lines = [header]
    for row in rows:
        counts = ", ".join(f"{k}={v}" for k, v in sorted(row["counts"].items()))
        affected = f"{row['rows_affected']}" + (f" ({counts})" if counts else "")
        lines.append(
            (
                row["period"],
                row["task"],
                str(row["runs"]),
                str(row["failures"]),
                str(row["canceled"]),
                str(row["dry_runs"]),
                affected,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    ]
