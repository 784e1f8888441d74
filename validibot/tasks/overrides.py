"""Incident overrides: re-time or pause a schedule without a redeploy.

An operator points ``VALIDIBOT_SCHEDULE_OVERRIDES`` at a JSON or YAML file mapping task ids to
a new ``cron`` and/or ``enabled``::

    {"purge_expired_submissions": {"cron": "30 4 * * *"}, "clear_sessions": {"enabled": false}}

The Dagster code location applies it when it loads (reload the code location to apply an
edit); ``sync_schedules --check`` reports every override as drift until it is removed, so an
incident change cannot quietly become permanent. Pure Python and pydantic, like the registry
(no Django, no Dagster). Dagster's own cron check, stricter than croniter's, runs where the
code location builds the schedule (``validibot_ops/schedules.py``) and names this file too.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from croniter import croniter
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

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

    def describe(self) -> str:
        parts = []
        if self.cron is not None:
            parts.append(f"cron={self.cron!r}")
        if self.enabled is not None:
            parts.append(f"enabled={self.enabled}")
        text = ", ".join(parts)
        return f"{text} ({self.reason})" if self.reason else text


def overrides_path() -> Path | None:
    value = os.environ.get(OVERRIDES_ENV, "").strip()
    return Path(value) if value else None


def load_overrides(
    path: Path | None = None, known_ids: set[str] | None = None
) -> dict[str, ScheduleOverride]:
    """Read and validate the overrides file (``$VALIDIBOT_SCHEDULE_OVERRIDES`` by default).

    Returns an empty mapping when no file is configured. Raises :class:`OverridesError` with
    the file name and the offending entry when anything is wrong: a half-applied incident
    change is worse than a code location that refuses to load and says why.
    """
    path = path if path is not None else overrides_path()
    if path is None:
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise OverridesError(f"{OVERRIDES_ENV}={path}: cannot read the file: {exc}") from exc
    data = _parse(path, text)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise OverridesError(
            f"{path}: expected a mapping of task id -> override, got {type(data).__name__}"
        )
    result: dict[str, ScheduleOverride] = {}
    for task_id, entry in data.items():
        where = f"{path}: task {task_id!r}"
        if known_ids is not None and task_id not in known_ids:
            raise OverridesError(f"{where}: no such task in the registry")
        try:
            valid = OverrideEntry.model_validate(entry)
        except ValidationError as exc:
            raise OverridesError(f"{where}: {_describe(exc)}") from None
        result[task_id] = ScheduleOverride(
            task_id, valid.cron, valid.enabled, valid.reason, source=str(path)
        )
    return result


class OverrideEntry(BaseModel):
    """One entry of the file, as written: ``cron`` and/or ``enabled``, optional ``reason``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    cron: str | None = None
    enabled: bool | None = None
    reason: str = ""

    @field_validator("reason", mode="before")
    @classmethod
    def _reason_as_text(cls, value: object) -> str:
        return "" if value is None else str(value)

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
        return f"unknown field(s) {unknown}; allowed: cron, enabled, reason"
    return "; ".join(_describe_one(error) for error in errors)


def _describe_one(error: Any) -> str:
    field = ".".join(str(part) for part in error["loc"])
    if error["type"] in {"model_type", "model_attributes_type", "dict_type"}:
        return "expected a mapping with cron and/or enabled"
    if field == "enabled":
        return f"enabled must be true or false, got {error['input']!r}"
    if field == "cron" and error["type"] == "string_type":
        return f"cron {error['input']!r} is not a valid five-field cron expression"
    if error["type"] == "value_error":
        return str(error["ctx"]["error"])
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
