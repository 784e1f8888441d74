"""Incident overrides: re-time or pause a schedule without a redeploy.

An operator points ``VALIDIBOT_SCHEDULE_OVERRIDES`` at a JSON or YAML file mapping task ids to
a new ``cron`` and/or ``enabled``, with who asked for it and why (both required) and, optionally,
when it ends::

    {"clear_sessions": {"enabled": false, "reason": "INC-42", "author": "alice",
                        "expires_at": "2026-12-03T06:00:00Z"}}

Expiry (``expires_at``, an aware datetime): an entry stops applying once its time has passed;
it is left out of every load from then on (:attr:`OverrideFile.expired`), and the code
location's ``validibot_override_expiry`` sensor alerts once and reloads the location so the
schedule returns to the registry. An entry whose expiry is not after the file's last
modification was written already expired and is refused, naming it: a typo in a date must not
quietly do nothing.

The Dagster code location applies it when it loads (reload the code location to apply an
edit); ``sync_schedules --check`` reports every override as drift until it is removed, so an
incident change cannot quietly become permanent. Pure Python and pydantic, like the registry
(no Django, no Dagster). Dagster's own cron check, stricter than croniter's, runs where the
code location builds the schedule (``validibot_ops/schedules.py``) and names this file too.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from croniter import croniter
from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    field_validator,
    model_validator,
)

OVERRIDES_ENV = "VALIDIBOT_SCHEDULE_OVERRIDES"


class OverridesError(ValueError):
    """The overrides file is missing, does not parse, or names an unknown task or field."""


@dataclass(frozen=True)
class ScheduleOverride:
    """One task's override; ``None`` fields keep the registry's value."""

    task_id: str
    cron: str | None = None
    enabled: bool | None = None
    reason: str = ""
    source: str = ""
    """The file the override was read from (named in errors about it)."""
    author: str = ""
    expires_at: datetime | None = None
    """When the override stops applying (aware); ``None``: until removed from the file."""

    def describe(self) -> str:
        """``cron='30 4 * * *' (INC-42; by alice; expires 2026-12-03T06:00:00+00:00)``."""
        parts = []
        if self.cron is not None:
            parts.append(f"cron={self.cron!r}")
        if self.enabled is not None:
            parts.append(f"enabled={self.enabled}")
        text = ", ".join(parts)
        notes = [self.reason] if self.reason else []
        if self.author:
            notes.append(f"by {self.author}")
        if self.expires_at is not None:
            notes.append(f"expires {self.expires_at.isoformat()}")
        return f"{text} ({'; '.join(notes)})" if notes else text

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True)
class OverrideFile:
    """The file's entries split at ``now``: those in force, and those whose expiry passed."""

    active: dict[str, ScheduleOverride] = field(default_factory=dict)
    expired: dict[str, ScheduleOverride] = field(default_factory=dict)


def overrides_path() -> Path | None:
    value = os.environ.get(OVERRIDES_ENV, "").strip()
    return Path(value) if value else None


def load_overrides(
    path: Path | None = None,
    known_ids: set[str] | None = None,
    now: datetime | None = None,
) -> dict[str, ScheduleOverride]:
    """The overrides in force at ``now`` (default: now); see :func:`load_override_file`."""
    return load_override_file(path, known_ids, now).active


def load_override_file(
    path: Path | None = None,
    known_ids: set[str] | None = None,
    now: datetime | None = None,
) -> OverrideFile:
    """Read and validate the overrides file (``$VALIDIBOT_SCHEDULE_OVERRIDES`` by default).

    Returns empty mappings when no file is configured. Raises :class:`OverridesError` with
    the file name and the offending entry when anything is wrong (a missing ``reason`` or
    ``author``, an expiry without a timezone or one not after the file's last change): a
    half-applied incident change is worse than a code location that refuses to load and says
    why. Entries whose expiry has passed by ``now`` come back in :attr:`OverrideFile.expired`.
    """
    path = path if path is not None else overrides_path()
    now = now if now is not None else datetime.now(UTC)
    if path is None:
        return OverrideFile()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise OverridesError(f"{OVERRIDES_ENV}={path}: cannot read the file: {exc}") from exc
    written_at = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    data = _parse(path, text)
    if data is None:
        return OverrideFile()
    if not isinstance(data, dict):
        raise OverridesError(
            f"{path}: expected a mapping of task id -> override, got {type(data).__name__}"
        )
    result = OverrideFile()
    for task_id, entry in data.items():
        where = f"{path}: task {task_id!r}"
        if known_ids is not None and task_id not in known_ids:
            raise OverridesError(f"{where}: no such task in the registry")
        try:
            valid = OverrideEntry.model_validate(entry)
        except ValidationError as exc:
            raise OverridesError(f"{where}: {_describe(exc)}") from None
        if valid.expires_at is not None and valid.expires_at <= written_at:
            raise OverridesError(
                f"{where}: expires_at {valid.expires_at.isoformat()} is not after the file was "
                f"written ({written_at.isoformat(timespec='seconds')}): the entry would never "
                "apply; fix the date or remove the entry"
            )
        override = ScheduleOverride(
            task_id,
            valid.cron,
            valid.enabled,
            valid.reason,
            source=str(path),
            author=valid.author,
            expires_at=valid.expires_at,
        )
        (result.expired if override.expired(now) else result.active)[task_id] = override
    return result


class OverrideEntry(BaseModel):
    """One entry of the file, as written: ``cron`` and/or ``enabled``; ``reason`` and
    ``author`` (required, non-empty); optional ``expires_at``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    cron: str | None = None
    enabled: bool | None = None
    reason: str
    author: str
    expires_at: datetime | None = None

    @field_validator("reason", "author", mode="before")
    @classmethod
    def _required_text(cls, value: object) -> str:
        text = "" if value is None else str(value).strip()
        if not text:
            raise ValueError("must be a non-empty text")
        return text

    @field_validator("expires_at", mode="before")
    @classmethod
    def _aware_datetime(cls, value: object) -> datetime | None:
        # YAML gives a datetime for an unquoted timestamp, JSON a string.
        if value is None:
            return None
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.strip())
            except ValueError:
                raise ValueError(f"expires_at {value!r} is not an ISO 8601 date and time") from None
        if not isinstance(value, datetime):
            raise ValueError(f"expires_at {value!r} is not an ISO 8601 date and time")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"expires_at {value.isoformat()} has no timezone (write e.g. ...T06:00:00Z)"
            )
        return value.astimezone(UTC)

    @field_validator("cron")
    @classmethod
    def _five_field_cron(cls, cron: str | None) -> str | None:
        if cron is not None and (len(cron.split()) != 5 or not croniter.is_valid(cron)):
            raise ValueError(f"cron {cron!r} is not a valid five-field cron expression")
        return cron

    @model_validator(mode="after")
    def _sets_something(self) -> OverrideEntry:
        if self.cron is None and self.enabled is None:
            raise ValueError("sets neither cron nor enabled")
        return self


def _describe(exc: ValidationError) -> str:
    """The validation errors in the file's terms (field names as written in it)."""
    errors = exc.errors()
    unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
    if unknown:
        return f"unknown field(s) {unknown}; allowed: {', '.join(OverrideEntry.model_fields)}"
    return "; ".join(_describe_one(error) for error in errors)


def _describe_one(error: Any) -> str:
    field = ".".join(str(part) for part in error["loc"])
    if error["type"] in {"model_type", "model_attributes_type", "dict_type"}:
        return "expected a mapping with cron and/or enabled"
    if field == "enabled":
        return f"enabled must be true or false, got {error['input']!r}"
    if field == "cron" and error["type"] == "string_type":
        return f"cron {error['input']!r} is not a valid five-field cron expression"
    if error["type"] == "missing":
        return f"{field} is required (who asked for the override, and why)"
    if error["type"] == "value_error":
        text = str(error["ctx"]["error"])
        return text if text.startswith(field) else f"{field} {text}"
    return f"{field}: {error['msg']}"


def _parse(path: Path, text: str):
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise OverridesError(f"{path}: not valid JSON: {exc}") from exc
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML comes with Dagster
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise OverridesError(
                f"{path}: not valid JSON (PyYAML missing for YAML): {exc}"
            ) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise OverridesError(f"{path}: not valid YAML: {exc}") from exc
