"""The job factory: one single-op job per registry task, tagged for routing and concurrency."""

from __future__ import annotations

import dagster as dg

from validibot.tasks.policies import OVERLAP_ALLOW
from validibot.tasks.registry import MaintenanceTask
from validibot.tasks.triggers import MANUAL
from validibot_ops.ops import build_task_op
from validibot_ops.tags import (
    CELERY_QUEUE_TAG,
    EXCLUSIVE_TAG,
    MAX_RUNTIME_TAG,
    TASK_TAG,
    TRIGGER_TAG,
)

STOP_MARGIN_SECONDS = 60
"""How long past its hard limit a run has to stop by itself before run monitoring fails it."""


def max_runtime_seconds(task: MaintenanceTask) -> int:
    """The run's ``dagster/max_runtime``: the hard limit plus :data:`STOP_MARGIN_SECONDS`.

    The command's own deadline (run start + hard limit, checked between batches) ends the
    run first, as a step failure that is not retried; run monitoring is the backstop for a
    run that cannot stop, and it must not race the command's own stop.
    """
    return task.hard_time_limit_seconds + STOP_MARGIN_SECONDS


def job_tags(task: MaintenanceTask) -> dict[str, str]:
    """Run tags every run of the task's job carries.

    ``validibot/task`` names the task (every surface finds its runs by it);
    ``validibot/exclusive`` is what ``dagster.yaml``'s tag concurrency limit counts (one run
    per task at a time; absent for ``overlap_policy=allow``); ``dagster-celery/queue`` is
    the queue a warm run is sent to (and what the per-queue limits count);
    ``dagster/max_runtime`` lets run monitoring fail a run that outlives the task's hard time
    limit instead of leaving it ``STARTED`` forever.
    ``validibot/trigger`` defaults to ``manual`` for runs Dagster creates without one
    (Launchpad, ``dagster job launch``); the op resolves it (``validibot.tasks.triggers``).
    """
    tags = {
        TASK_TAG: task.id,
        TRIGGER_TAG: MANUAL,
        CELERY_QUEUE_TAG: task.queue,
        MAX_RUNTIME_TAG: str(max_runtime_seconds(task)),
    }
    if task.overlap_policy != OVERLAP_ALLOW:
        tags[EXCLUSIVE_TAG] = task.id  # the tag limit: one run at a time (not for `allow`)
    return tags


def build_task_job(
    task: MaintenanceTask, executor_def: dg.ExecutorDefinition | None = None
) -> dg.JobDefinition:
    """The task's job, named after the task id."""
    op_def = build_task_op(task)

    # The op and the job share the task id; the graph between them must not (Dagster requires
    # node names unique within a repository), hence the ``_graph`` suffix nobody sees in the UI.
    graph = dg.GraphDefinition(name=f"{task.id}_graph", node_defs=[op_def])
    return graph.to_job(
        name=task.id,
        description=task.description or task.name,
        tags=job_tags(task),
        executor_def=executor_def,
        metadata={
            "command": f"manage.py {task.command} {' '.join(task.args)}".rstrip(),
            "queue": task.queue,
        },
    )
