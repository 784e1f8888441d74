"""Tag and key names shared by jobs, schedules, sensors, the CLI and the HTTP trigger.

Declared once in :mod:`validibot.tasks.vocabulary`, which the Django side reads too.
"""

import dagster as dg

from validibot.tasks.registry import MaintenanceTask
from validibot.tasks.vocabulary import (
    ASSET_PREFIX,
    CELERY_QUEUE_TAG,
    EXCLUSIVE_TAG,
    MAX_RUNTIME_TAG,
    OVERRIDE_PROBLEM_TAG,
    OVERRIDE_TAG,
    TASK_TAG,
    TRIGGER_TAG,
)

__all__ = [
    "ASSET_PREFIX",
    "CELERY_QUEUE_TAG",
    "EXCLUSIVE_TAG",
    "MAX_RUNTIME_TAG",
    "OVERRIDE_PROBLEM_TAG",
    "OVERRIDE_TAG",
    "TASK_TAG",
    "TRIGGER_TAG",
    "task_asset_key",
]


def task_asset_key(task: MaintenanceTask) -> dg.AssetKey:
    """The per-task asset whose materializations plot each run's counts over time."""
    return dg.AssetKey([ASSET_PREFIX, task.id])
