"""Test-only registry entries, loaded with VALIDIBOT_TASK_MODULES=tests.support.testapp.registered.

The test Django settings install this app, so these commands exist wherever a test points a
Dagster process (worker, daemon, CLI) at ``config.settings.test``. Importing this module
registers the tasks; import ``task_definitions`` to read them without that side effect.
"""

from tests.support.testapp.task_definitions import TEST_TASKS
from validibot.tasks.registry import register

for _task in TEST_TASKS:
    register(_task)
