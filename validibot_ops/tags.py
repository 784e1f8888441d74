"""Tag and key names shared by jobs, schedules, sensors, the CLI and the HTTP trigger.

Declared once in :mod:`validibot.tasks.vocabulary`, which the Django side reads too.
"""

from validibot.tasks.vocabulary import (
    ASSET_PREFIX,
    CELERY_QUEUE_TAG,
    EXCLUSIVE_TAG,
    MAX_RUNTIME_TAG,
    OVERRIDE_TAG,
    TASK_TAG,
    TRIGGER_TAG,
)

__all__ = [
    "ASSET_PREFIX",
    "CELERY_QUEUE_TAG",
    "EXCLUSIVE_TAG",
    "MAX_RUNTIME_TAG",
    "OVERRIDE_TAG",
    "TASK_TAG",
    "TRIGGER_TAG",
]
