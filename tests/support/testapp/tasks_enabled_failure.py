"""Registers an enabled task that always fails (status view and alert tests)."""

from tests.support.testapp.task_definitions import ENABLED_FAILURE
from validibot.tasks.registry import register

register(ENABLED_FAILURE)
