"""Incident overrides: re-time or pause a schedule without a redeploy.

An operator points ``VALIDIBOT_SCHEDULE_OVERRIDES`` at a JSON or YAML file mapping task ids to
a new ``cron`` and/or ``enabled``::

    {"purge_expired_submissions": {"cron": "30 4 * * *"}, "clear_sessions": {"enabled": false}}

The Dagster code location applies it when it loads (reload the code location to apply an
edit); ``sync_schedules --check`` reports every override as drift until it is removed, so an
incident change cannot quietly become permanent. Pure Python, like the registry.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from croniter import croniter

OVERRIDES_ENV = "VALIDIBOT_SCHEDULE_OVERRIDES"
_ALLOWED_KEYS = frozenset({"cron", "enabled", "reason"})


class OverridesError(ValueError):
    """The overrides file is missing, does not parse, or names an unknown task or field."""


@dataclass(frozen=True)
class ScheduleOverride:
    """One task's override; ``None`` fields keep the registry's value."""

    task_id: str
    cron: str | None = None
    enabled: bool | None = None
    reason: str = ""

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
        if not isinstance(entry, dict):
            raise OverridesError(f"{where}: expected a mapping with cron and/or enabled")
        unknown = set(entry) - _ALLOWED_KEYS
        if unknown:
            raise OverridesError(
                f"{where}: unknown field(s) {sorted(unknown)}; allowed: cron, enabled, reason"
            )
        cron, enabled = entry.get("cron"), entry.get("enabled")
        if cron is None and enabled is None:
            raise OverridesError(f"{where}: sets neither cron nor enabled")
        if cron is not None and (
            not isinstance(cron, str) or len(cron.split()) != 5 or not croniter.is_valid(cron)
        ):
            raise OverridesError(
                f"{where}: cron {cron!r} is not a valid five-field cron expression"
            )
        if enabled is not None and not isinstance(enabled, bool):
            raise OverridesError(f"{where}: enabled must be true or false, got {enabled!r}")
        result[task_id] = ScheduleOverride(task_id, cron, enabled, str(entry.get("reason", "")))
    return result


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
