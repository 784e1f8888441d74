"""A downstream package's task module, loaded through VALIDIBOT_TASK_MODULES in the tests."""

from tests.support.testapp.task_definitions import DOWNSTREAM_TASK
from validibot.tasks.registry import register

register(DOWNSTREAM_TASK)
