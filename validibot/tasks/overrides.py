"""Incident overrides: re-time or pause a schedule without a redeploy.

An operator points ``VALIDIBOT_SCHEDULE_OVERRIDES`` at a JSON or YAML file mapping task ids to
a new ``cron`` and/or ``enabled``, with who asked for it and why (both required) and, optionally,
when it ends::

    {"clear_sessions": {"enabled": false, "reason": "INC-42", "author": "alice",
                        "expires_at": "2099-12-03T06:00:00Z"}}

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

import difflib
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
        """``cron='30 4 * * *' (INC-42; by alice; expires 2099-12-03T06:00:00+00:00)``."""
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
class OverrideProblem:
    """One thing wrong with the file: a bad entry (``task_id`` set) or the whole file."""

    source: str
    cause: str
    task_id: str | None = None
    """The entry's task id as written; ``None`` when the whole file is unusable."""

    def message(self) -> str:
        """``<file>: task 'x': <cause>``, or ``<file>: <cause>`` for the whole file."""
        if self.task_id is None:
            return f"{self.source}: {self.cause}"
        return f"{self.source}: task {self.task_id!r}: {self.cause}"


@dataclass(frozen=True)
class OverrideFile:
    """The file's entries split at ``now``: those in force, those whose expiry passed, and the
    problems (a bad entry applies nothing; its task keeps its registry schedule)."""

    active: dict[str, ScheduleOverride] = field(default_factory=dict)
    expired: dict[str, ScheduleOverride] = field(default_factory=dict)
    problems: tuple[OverrideProblem, ...] = ()


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

    Strict: raises :class:`OverridesError` naming the file and the first offending entry when
    anything is wrong (the commands that act on the file refuse it). The code location reads
    it with :func:`read_override_file` instead, which keeps the good entries.
    """
    loaded = read_override_file(path, known_ids, now)
    if loaded.problems:
        raise OverridesError("; ".join(p.message() for p in loaded.problems))
    return loaded


def read_override_file(
    path: Path | None = None,
    known_ids: set[str] | None = None,
    now: datetime | None = None,
) -> OverrideFile:
    """Read the overrides file, failing safe: each bad entry is a problem, not an exception.

    Returns empty mappings when no file is configured. A bad entry (a missing ``reason`` or
    ``author``, an unknown task or field, a bad cron, an expiry without a timezone or one not
    after the file's last change) applies nothing and comes back in
    :attr:`OverrideFile.problems`; a file that cannot be read or parsed is one problem and no
    entry applies. Entries whose expiry has passed by ``now`` come back in
    :attr:`OverrideFile.expired`.
    """
    path = path if path is not None else overrides_path()
    now = now if now is not None else datetime.now(UTC)
    if path is None:
        return OverrideFile()
    try:
        text = path.read_text(encoding="utf-8")
        written_at = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        data = _parse(path, text)
    except OSError as exc:
        cause = f"cannot read the file: {exc}"
        return OverrideFile(problems=(OverrideProblem(f"{OVERRIDES_ENV}={path}", cause),))
    except ValueError as exc:  # does not parse: no entry can be trusted
        return OverrideFile(problems=(OverrideProblem(str(path), str(exc)),))
    if data is None:
        return OverrideFile()
    if not isinstance(data, dict):
        cause = f"expected a mapping of task id -> override, got {type(data).__name__}"
        return OverrideFile(problems=(OverrideProblem(str(path), cause),))
    active: dict[str, ScheduleOverride] = {}
    expired: dict[str, ScheduleOverride] = {}
    problems: list[OverrideProblem] = []
    for task_id, entry in data.items():
        try:
            override = _entry(path, str(task_id), entry, known_ids, written_at)
        except ValueError as exc:
            problems.append(OverrideProblem(str(path), str(exc), str(task_id)))
            continue
        (expired if override.expired(now) else active)[override.task_id] = override
    return OverrideFile(active, expired, tuple(problems))


def _entry(
    path: Path, task_id: str, entry: object, known_ids: set[str] | None, written_at: datetime
) -> ScheduleOverride:
    """One entry, validated; raises ``ValueError`` with the cause (without file and task)."""
    if known_ids is not None and task_id not in known_ids:
        raise ValueError(f"no such task in the registry{_closest(task_id, known_ids)}")
    try:
        valid = OverrideEntry.model_validate(entry)
    except ValidationError as exc:
        raise ValueError(_describe(exc)) from None
    if valid.expires_at is not None and valid.expires_at <= written_at:
        raise ValueError(
            f"expires_at {valid.expires_at.isoformat()} is not after the file was "
            f"written ({written_at.isoformat(timespec='seconds')}): the entry would never "
            "apply; fix the date or remove the entry"
        )
    return ScheduleOverride(
        task_id,
        valid.cron,
        valid.enabled,
        valid.reason,
        source=str(path),
        author=valid.author,
        expires_at=valid.expires_at,
    )


def _closest(task_id: str, known_ids: set[str]) -> str:
    match = difflib.get_close_matches(task_id, sorted(known_ids), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


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


def _parse(path: Path, text: str) -> object:
    """The file's data; raises ``ValueError`` naming the syntax problem."""
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc}") from exc
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML comes with Dagster
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON (PyYAML missing for YAML): {exc}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML: {exc}") from exc
