"""Two daily test tasks for the catch-up test, registered when imported (a Dagster process
loads this via ``VALIDIBOT_TASK_MODULES``); the test chooses their fire time through
``VALIDIBOT_TEST_CATCHUP_CRON`` (a daily cron two hours in the past)."""

import os

from validibot.tasks.registry import MaintenanceTask, register

CRON_ENV = "VALIDIBOT_TEST_CATCHUP_CRON"
CRON = os.environ.get(CRON_ENV, "0 0 1 1 *")

register(
    MaintenanceTask(
        id="catchup_digest",
        name="Test: digest with a one-hour catch-up window",
        command="noop_task",
        cron=CRON,
        catchup_window_seconds=3600,
    )
)
register(
    MaintenanceTask(
        id="catchup_purge",
        name="Test: purge that catches up",
        command="noop_task",
        cron=CRON,
    )
)
