"""The test-only registry entries, as data: importing this registers nothing.

Tests that only need the definitions import them from here; ``tasks.py`` registers them (what
``VALIDIBOT_TASK_MODULES=tests.support.testapp.tasks`` loads in Dagster processes).
"""

from validibot.tasks.registry import MaintenanceTask

TEST_TASKS = (
    MaintenanceTask(
        id="test_noop",
        name="Test: no-op every minute",
        command="noop_task",
        cron="* * * * *",
        description="Test-only task that fires every minute.",
    ),
    MaintenanceTask(
        id="test_flaky",
        name="Test: fails once",
        command="flaky_task",
        cron="0 0 1 1 *",
        enabled=False,
        max_retries=2,
        retry_delay_seconds=1,
    ),
    MaintenanceTask(
        id="test_always_fail",
        name="Test: always fails",
        command="always_fail_task",
        cron="0 0 1 1 *",
        enabled=False,
        max_retries=1,
        retry_delay_seconds=1,
    ),
    MaintenanceTask(
        id="test_slow",
        name="Test: slow",
        command="slow_task",
        cron="0 0 1 1 *",
        enabled=False,
        max_retries=0,
        soft_time_limit_seconds=60,
        hard_time_limit_seconds=120,
    ),
)
