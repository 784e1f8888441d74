"""An enabled task that always fails (status view and alert tests); yearly cron, never ticks."""

from validibot.tasks.registry import (
    MaintenanceTask,
    register,
)

register(
    MaintenanceTask(
        id="test_enabled_failure",
        name="Test: enabled and failing",
        command="always_fail_task",
        cron="0 0 1 1 *",
        max_retries=0,
    )
)
