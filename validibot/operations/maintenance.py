"""Maintenance mode, as Django sees it: the one row that says it is on, and its input rules.

``validibot-ops maintenance on|off|status`` (``validibot_ops/maintenance.py``) changes the
schedules on the Dagster instance and keeps their prior states in this row; the HTTP trigger,
``doctor`` and ``scheduled_task_status`` read it here, without Dagster.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import transaction

from validibot.operations.models import MaintenanceMode

SINGLETON = 1


class MaintenanceInputError(ValueError):
    """A bad ``maintenance on`` request (the message names the option)."""


@dataclass(frozen=True)
class MaintenanceRequest:
    """A validated ``maintenance on``: reason and author non-empty, ``until`` in the future."""

    reason: str
    author: str
    until: datetime | None = None


def parse_until(text: str | None) -> datetime | None:
    """``--until``: an ISO 8601 date and time with a timezone (``2099-12-03T06:00:00Z``)."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise MaintenanceInputError(
            f"--until {text!r} is not an ISO 8601 date and time (e.g. 2099-12-03T06:00:00Z)"
        ) from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise MaintenanceInputError(
            f"--until {text!r} has no timezone: write e.g. 2099-12-03T06:00:00Z "
            "or 2099-12-03T07:00:00+01:00"
        )
    return value.astimezone(UTC)


def validate_request(
    reason: str | None, author: str | None, until: str | None, now: datetime
) -> MaintenanceRequest:
    """The request, or :class:`MaintenanceInputError` naming what is wrong."""
    problems = []
    if not (reason or "").strip():
        problems.append("--reason is required (why the schedules are paused)")
    if not (author or "").strip():
        problems.append("--author is required (who paused them)")
    end = parse_until(until)
    if end is not None and end <= now:
        problems.append(f"--until {end.isoformat()} is in the past (now {now.isoformat()})")
    if problems:
        raise MaintenanceInputError("; ".join(problems))
    return MaintenanceRequest((reason or "").strip(), (author or "").strip(), end)


def current() -> MaintenanceMode | None:
    """The maintenance row, or ``None`` when maintenance mode is off."""
    return MaintenanceMode.objects.filter(pk=SINGLETON).first()


def is_active(window: MaintenanceMode | None, now: datetime) -> bool:
    """On, and not past its ``until`` (the sensor restores the schedules soon after it)."""
    return window is not None and (window.until is None or window.until > now)


def describe(window: MaintenanceMode) -> str:
    """One line: ``maintenance: R (by A since S[, until T])``."""
    return f"maintenance: {window_text(window)}"


def window_text(window: MaintenanceMode) -> str:
    """``R (by A since S[, until T])``: for lines that already say "maintenance"."""
    text = f"{window.reason} (by {window.author} since {window.started_at.isoformat()}"
    if window.until is not None:
        text += f", until {window.until.isoformat()}"
    return text + ")"


def record(
    request: MaintenanceRequest, states: dict[str, dict[str, Any]], now: datetime
) -> tuple[MaintenanceMode, bool]:
    """Turn maintenance on, recording ``states``; returns the row and whether it is new.

    Idempotent: when it is already on, the first recorded states, reason, author and start
    stay; only schedules that were not recorded yet (new in the code location) are added.
    """
    with transaction.atomic():
        window = MaintenanceMode.objects.select_for_update().filter(pk=SINGLETON).first()
        if window is None:
            window = MaintenanceMode.objects.create(
                pk=SINGLETON,
                reason=request.reason,
                author=request.author,
                started_at=now,
                until=request.until,
                prior_states=states,
            )
            return window, True
        added = {k: v for k, v in states.items() if k not in window.prior_states}
        if added:
            window.prior_states = {**window.prior_states, **added}
            window.save(update_fields=["prior_states"])
        return window, False


def finish() -> None:
    """Turn maintenance off (after the schedules are restored)."""
    MaintenanceMode.objects.filter(pk=SINGLETON).delete()
