"""A downstream package's task module, loaded through VALIDIBOT_TASK_MODULES in the tests."""

from validibot.tasks.registry import (
    MaintenanceTask,
    register,
)

DOWNSTREAM_TASK = MaintenanceTask(
    id="expire_partner_keys",
    name="Expire partner keys",
    command="cleanup_idempotency_keys",
    cron="30 1 * * *",
    description="A downstream task that reuses a built-in command with its own arguments.",
    args=("--batch-size", "10"),
)

register(DOWNSTREAM_TASK)
