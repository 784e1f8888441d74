"""Outcome checks: what a task's registry entry says "clean data" means, and how it is judged.

A task's run history says the task **ran**; an outcome check says whether the data it looks
after is **clean** (no expired submission still holding content, no run stuck past its
timeout, ...). Each :class:`OutcomeCheck` names a read-only query function that lives in the
Django app owning the rows (``validibot/<app>/outcomes.py``) and returns an
:class:`OutcomeFigure`; :func:`judge` turns the figure into pass / WARN / ERROR with the
check's two bounds. The Dagster code location (``validibot_ops/checks.py``) generates one
asset check per entry on the task's asset; nothing here imports Django or Dagster.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

COUNT = "count"
"""Bounds apply to the number of offending rows."""
OVERDUE_HOURS = "overdue_hours"
"""Bounds apply to how long the oldest offending row has been overdue, in hours."""
MEASURES = frozenset({COUNT, OVERDUE_HOURS})

PASS, WARN, ERROR = "pass", "warn", "error"

HOUR = 3600
DAY = 24 * HOUR

CHECK_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
QUERY_PATTERN = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")


@dataclass(frozen=True)
class OutcomeFigure:
    """What a query found.

    Attributes:
        count: offending rows (past their due time plus the check's grace).
        oldest_overdue_seconds: how long the oldest of them has been overdue (0 when none).
    """

    count: int
    oldest_overdue_seconds: float = 0.0

    @property
    def oldest_overdue_hours(self) -> float:
        return self.oldest_overdue_seconds / 3600


@dataclass(frozen=True)
class OutcomeCheck:
    """One outcome check of a task, declared in its registry entry.

    Attributes:
        name: snake_case, unique within the task; the Dagster asset check's name.
        query: dotted path of a read-only function ``(now, grace) -> OutcomeFigure`` in the
            Django app that owns the rows (``validibot.retention.outcomes.retries_over_threshold``).
        description: what an offending row is, for operators (shown in the Checks tab).
        warn_above: the check is WARN when the measure is above this (pass at or under it).
        error_above: the check is ERROR when the measure is above this (``>= warn_above``).
        measure: what the bounds apply to: ``count`` or ``overdue_hours``.
        grace_seconds: how long past its due time a row may wait before it offends (the
            task's interval and a backlog's worth of runs: the task is not late before then).
    """

    name: str
    query: str
    description: str
    warn_above: float = 0
    error_above: float = 24
    measure: str = OVERDUE_HOURS
    grace_seconds: int = 0

    def problems(self) -> Iterable[str]:
        """What is wrong with the declaration (empty when usable)."""
        if not isinstance(self.name, str) or not CHECK_NAME_PATTERN.match(self.name):
            yield f"outcome check name {self.name!r} must match ^[a-z][a-z0-9_]*$"
        if not isinstance(self.query, str) or not QUERY_PATTERN.match(self.query):
            yield f"outcome check {self.name!r}: query {self.query!r} must be a dotted path"
        if self.measure not in MEASURES:
            yield f"outcome check {self.name!r}: measure {self.measure!r} not in {sorted(MEASURES)}"
        if not 0 <= self.warn_above <= self.error_above:
            yield f"outcome check {self.name!r}: bounds must satisfy 0 <= warn_above <= error_above"
        if self.grace_seconds < 0:
            yield f"outcome check {self.name!r}: grace_seconds must be >= 0"

    @property
    def grace_text(self) -> str:
        """The grace in the largest whole unit: ``20 min``, ``25 h``, ``8 d``, ``none``."""
        for size, unit in ((DAY, "d"), (HOUR, "h"), (60, "min")):
            if self.grace_seconds and self.grace_seconds % size == 0:
                return f"{self.grace_seconds // size} {unit}"
        return f"{self.grace_seconds} s" if self.grace_seconds else "none"

    @property
    def bounds_text(self) -> str:
        """``WARN above 0 h, ERROR above 24 h`` (no unit for a count)."""
        unit = "" if self.measure == COUNT else " h"
        return f"WARN above {self.warn_above:g}{unit}, ERROR above {self.error_above:g}{unit}"

    def value(self, figure: OutcomeFigure) -> float:
        """The measure the bounds apply to."""
        return figure.count if self.measure == COUNT else figure.oldest_overdue_hours


def judge(check: OutcomeCheck, figure: OutcomeFigure) -> str:
    """``pass`` at or under ``warn_above``, ``warn`` above it, ``error`` above ``error_above``."""
    value = check.value(figure)
    if value > check.error_above:
        return ERROR
    if value > check.warn_above:
        return WARN
    return PASS
