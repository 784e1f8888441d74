"""The code location: every job, schedule and sensor is generated from the task registry.

Loading this module reads the registry (and the incident overrides file, if any) and builds
Dagster objects; it never sets Django up or touches a database.

    dagster dev -m validibot_ops.definitions
    dagster code-server start -m validibot_ops.definitions -h 0.0.0.0 -p 4000
"""

from __future__ import annotations

import dagster as dg

from validibot.tasks.registry import BACKEND_DAGSTER, get_tasks
from validibot_ops.checks import build_check_definitions
from validibot_ops.commands import check_commands
from validibot_ops.executors import build_executor
from validibot_ops.freshness import freshness_policies
from validibot_ops.history_files import build_history_files_sensor
from validibot_ops.io import SUMMARY_IO_MANAGER_KEY, SummaryIOManager
from validibot_ops.jobs import build_task_job
from validibot_ops.resources import DjangoResource
from validibot_ops.schedules import applied_overrides, build_task_schedule, problems_for
from validibot_ops.sensors import build_sensors
from validibot_ops.tags import ASSET_PREFIX, task_asset_key


def _asset_description(task) -> str:
    """What the task does and what each plotted count means (Markdown, shown in the catalog)."""
    lines = [f"Counts reported by each run of `{task.id}`: {task.description or task.name}"]
    if task.count_descriptions:
        lines.append("")
        lines += [f"- **{name}**: {text}" for name, text in task.count_descriptions]
    lines.append("")
    lines.append("Plots: Overview -> Metadata -> Plots. Dry runs are recorded as observations.")
    return "\n".join(lines)


def build_definitions() -> dg.Definitions:
    """Every task gets a job, whatever its backends: the HTTP trigger (Cloud Scheduler,
    EventBridge) and the UI launch jobs too. Only tasks with the ``dagster`` backend get a
    schedule; a ``gcp``-only task is scheduled by Cloud Scheduler through its trigger."""
    tasks = get_tasks()
    check_commands(tasks)
    overrides = applied_overrides(tasks)  # a bad entry holds only its own task
    executor = build_executor()
    jobs = {task.id: build_task_job(task, executor) for task in tasks}
    scheduled = [t for t in tasks if BACKEND_DAGSTER in t.backends]
    # Schedules first: Dagster's cron check names a bad registry entry before the freshness
    # policies try to measure its interval.
    schedules = [
        build_task_schedule(
            t, jobs[t.id], overrides.active.get(t.id), problems_for(t, overrides.problems)
        )
        for t in scheduled
    ]
    policies = freshness_policies(tasks)
    core = dg.Definitions(
        jobs=list(jobs.values()),
        schedules=schedules,
        sensors=[*build_sensors(tasks), build_history_files_sensor()],
        assets=[
            dg.AssetSpec(
                task_asset_key(t),
                description=_asset_description(t),
                group_name=ASSET_PREFIX,
                kinds={"django"},
                metadata={f"count: {name}": text for name, text in t.count_descriptions},
                freshness_policy=policies.get(t.id),
            )
            for t in tasks
        ],
        resources={"django": DjangoResource(), SUMMARY_IO_MANAGER_KEY: SummaryIOManager()},
    )
    return dg.Definitions.merge(core, build_check_definitions(tasks, executor))


defs = build_definitions()
