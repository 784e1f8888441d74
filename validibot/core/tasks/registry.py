"""Upstream's registry API at its documented path (``validibot.core.tasks.registry``).

Everything here is defined in :mod:`validibot.tasks.upstream_shape`, over the project's one
registry: a task registered here is a job, a schedule, an HTTP trigger and a row in every
status view, exactly like a built-in. See docs/adding-a-task.md.
"""

from validibot.tasks.upstream_shape import (
    SCHEDULED_ADMIN_TASKS,
    Backend,
    ScheduledAdminTaskDefinition,
    ScheduleType,
    get_admin_task_by_id,
    get_admin_tasks_for_backend,
    get_all_admin_tasks,
    get_enabled_admin_tasks,
    register_scheduled_admin_task,
    reset_dynamic_tasks,
)

__all__ = [
    "SCHEDULED_ADMIN_TASKS",
    "Backend",
    "ScheduleType",
    "ScheduledAdminTaskDefinition",
    "get_admin_task_by_id",
    "get_admin_tasks_for_backend",
    "get_all_admin_tasks",
    "get_enabled_admin_tasks",
    "register_scheduled_admin_task",
    "reset_dynamic_tasks",
]
