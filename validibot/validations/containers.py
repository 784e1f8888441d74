"""Which validator containers are orphaned, decided from their Validibot labels.

Validator containers carry ``org.validibot.managed=true`` plus ``org.validibot.run_id``,
``org.validibot.validator``, ``org.validibot.started_at`` (ISO 8601) and
``org.validibot.timeout_seconds``. Containers without the managed label are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils.dateparse import parse_datetime

MANAGED_LABEL = "org.validibot.managed"
RUN_ID_LABEL = "org.validibot.run_id"
VALIDATOR_LABEL = "org.validibot.validator"
STARTED_AT_LABEL = "org.validibot.started_at"
TIMEOUT_LABEL = "org.validibot.timeout_seconds"
DEFAULT_TIMEOUT_SECONDS = 30 * 60


@dataclass(frozen=True)
class ContainerInfo:
    """What the cleanup needs to know about one managed container."""

    id: str
    name: str
    run_id: str | None
    started_at: datetime | None
    timeout_seconds: int

    @classmethod
    def from_labels(cls, container_id: str, name: str, labels: dict[str, str], created: str):
        started = parse_datetime(labels.get(STARTED_AT_LABEL, "") or "") or _parse_created(created)
        try:
            timeout = int(labels.get(TIMEOUT_LABEL, DEFAULT_TIMEOUT_SECONDS))
        except ValueError:
            timeout = DEFAULT_TIMEOUT_SECONDS
        return cls(container_id, name, labels.get(RUN_ID_LABEL) or None, started, timeout)


def _parse_created(created: str) -> datetime | None:
    # Docker reports nanoseconds ("2026-11-25T05:00:00.123456789Z"); keep microseconds.
    if not created:
        return None
    head, _, frac = created.rstrip("Z").partition(".")
    return parse_datetime(f"{head}.{frac[:6] or '0'}+00:00")


def orphan_reason(
    info: ContainerInfo,
    run_status: str | None,
    terminal: tuple[str, ...],
    now: datetime,
    grace: int,
) -> str | None:
    """Why this container should go, or ``None`` to keep it.

    ``run_status`` is ``None`` when the run does not exist. A young container whose run row
    is missing or terminal is kept for ``grace`` seconds: its run may not be committed yet.
    """
    age = (now - info.started_at) if info.started_at else timedelta.max
    if age > timedelta(seconds=info.timeout_seconds + grace):
        return f"older than its timeout ({info.timeout_seconds}s) plus grace ({grace}s)"
    if age <= timedelta(seconds=grace):
        return None
    if run_status is None:
        return "its validation run does not exist"
    if run_status in terminal:
        return f"its validation run is {run_status}"
    return None


def describe(container: Any) -> ContainerInfo:
    """A :class:`ContainerInfo` from a docker SDK container object."""
    return ContainerInfo.from_labels(
        container.id,
        container.name,
        container.labels or {},
        container.attrs.get("Created", ""),
    )
