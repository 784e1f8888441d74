"""A test task that always fails and pauses after two failures, registered when imported (a
Dagster process loads it via ``VALIDIBOT_TASK_MODULES``). Its yearly cron never fires during a
test: its runs are launched by hand."""

from validibot.tasks.registry import MaintenanceTask, register

register(
    MaintenanceTask(
        id="test_pausable",
        name="Test: pauses after two failures",
        command="always_fail_task",
        cron="0 0 1 1 *",
        max_retries=0,
        pause_after_failures=2,
    )
)
