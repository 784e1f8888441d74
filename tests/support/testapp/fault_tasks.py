"""Test-only registry entry of the fault suite: a slow batched purge over real rows.

Loaded with ``VALIDIBOT_TASK_MODULES=tests.support.testapp.fault_tasks``. The hard limit is
short on purpose: it becomes the job's ``dagster/max_runtime`` tag, and run monitoring ends a
run whose worker was killed only when that limit passes, so the fault tests wait ~30 s, not
the 30 min of a real task.
"""

from validibot.tasks.registry import (
    MaintenanceTask,
    register,
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

register(SLOW_PURGE)
