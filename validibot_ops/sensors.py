"""Sensors generated from the registry (observability: see docs/operations.md)."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from validibot.core.tasks.registry import ScheduledAdminTaskDefinition


def build_sensors(tasks: Sequence[ScheduledAdminTaskDefinition]) -> list[dg.SensorDefinition]:
    return []
