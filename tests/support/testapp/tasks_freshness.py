"""Registers an enabled hourly no-op for the freshness tests (window = grace x 1 h)."""

from tests.support.testapp.task_definitions import HOURLY_NOOP
from validibot.tasks.registry import register

register(HOURLY_NOOP)
