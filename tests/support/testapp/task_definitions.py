"""Every test-only registry entry, as data: importing this registers nothing.

Tests that only need the definitions import them from here; ``tasks.py`` registers them (what
``VALIDIBOT_TASK_MODULES=tests.support.testapp.registered`` loads in Dagster processes).
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

SLOW_PURGE = MaintenanceTask(
    id="test_slow_purge",
    name="Test: slow purge of expired submissions",
    command="slow_purge_submissions",
    cron="0 0 1 1 *",
    enabled=False,
    max_retries=0,
    soft_time_limit_seconds=20,
    hard_time_limit_seconds=30,
)
"""The fault suite's slow batched purge over real rows (registered by ``fault_tasks``). The hard
limit is short on purpose: it becomes the job's ``dagster/max_runtime`` tag, so the fault tests
wait ~30 s, not the 30 min of a real task."""

ENABLED_FAILURE = MaintenanceTask(
    id="test_enabled_failure",
    name="Test: enabled and failing",
    command="always_fail_task",
    cron="0 0 1 1 *",
    max_retries=0,
)
"""An enabled task that always fails (status view and alert tests); yearly cron, never ticks."""

DOWNSTREAM_TASK = MaintenanceTask(
    id="expire_partner_keys",
    name="Expire partner keys",
    command="cleanup_idempotency_keys",
    cron="30 1 * * *",
    description="A downstream task that reuses a built-in command with its own arguments.",
    args=("--batch-size", "10"),
)
"""What a downstream package registers (``tests/validibot/tasks/downstream_tasks.py``)."""

HOURLY_NOOP = MaintenanceTask(
    id="test_hourly_noop",
    name="Test: hourly no-op",
    command="noop_task",
    cron="0 * * * *",
    description="Test-only task whose freshness window a test shrinks with the grace setting.",
)
"""Registered by ``tasks_freshness`` (the freshness daemon test)."""
