"""Registers the fault suite's slow purge (loaded through VALIDIBOT_TASK_MODULES)."""

from tests.support.testapp.task_definitions import SLOW_PURGE
from validibot.tasks.registry import register

register(SLOW_PURGE)
