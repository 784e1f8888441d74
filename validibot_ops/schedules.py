"""The schedule factory: the task's cron, in its timezone, ticks skipped as its policies say."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import dagster as dg

from validibot.tasks.overrides import (
    OverrideFile,
    OverrideProblem,
    ScheduleOverride,
    read_override_file,
)
from validibot.tasks.policies import policy_summary
from validibot.tasks.registry import BACKEND_DAGSTER, MaintenanceTask
from validibot.tasks.vocabulary import IN_PROGRESS_STATUSES
from validibot_ops.dagster_internals import is_valid_cron_schedule
from validibot_ops.policies import tick_skip_reason
from validibot_ops.tags import OVERRIDE_PROBLEM_TAG, OVERRIDE_TAG, TASK_TAG, TRIGGER_TAG

IN_PROGRESS = [dg.DagsterRunStatus(name) for name in sorted(IN_PROGRESS_STATUSES)]
"""A run in any of these states means the task is busy; a new tick is skipped, not queued."""


def applied_overrides(
    tasks: Sequence[MaintenanceTask], now: datetime | None = None, path: Path | None = None
) -> OverrideFile:
    """The overrides file as the code location applies it, failing safe.

    A bad entry (unknown task or field, bad cron or date, missing reason or author, a cron
    Dagster's stricter check refuses) applies nothing: its task keeps the registry's cron and
    state, and the entry is one of :attr:`OverrideFile.problems`. A file that does not read or
    parse applies no entry at all. Every other entry applies; no problem stops the load.
    ``path`` defaults to ``$VALIDIBOT_SCHEDULE_OVERRIDES``.
    """
    loaded = read_override_file(path, known_ids={t.id for t in tasks}, now=now)
    active: dict[str, ScheduleOverride] = {}
    problems = list(loaded.problems)
    for task_id, override in loaded.active.items():
        if override.cron is not None and not is_valid_cron_schedule(override.cron):
            # Dagster's cron check is stricter than croniter's (e.g. "0 0 31 2 *" never fires).
            cause = f"key 'cron' ({override.cron!r}): Dagster refuses it as a cron schedule"
            problems.append(OverrideProblem(override.source, cause, task_id))
        else:
            active[task_id] = override
    return OverrideFile(active, loaded.expired, tuple(problems))


def problems_for(task: MaintenanceTask, problems: Sequence[OverrideProblem]) -> list[str]:
    """The problems that hold ``task`` at its registry schedule: its entry's, the file's."""
    return [p.message() for p in problems if p.task_id in (None, task.id)]


def effective_schedule(
    task: MaintenanceTask, override: ScheduleOverride | None = None
) -> tuple[str, bool]:
    """The cron and running state the schedule gets: the registry's, unless overridden."""
    cron = override.cron if override and override.cron is not None else task.cron
    enabled = override.enabled if override and override.enabled is not None else task.enabled
    return cron, enabled and BACKEND_DAGSTER in task.backends


def build_task_schedule(
    task: MaintenanceTask,
    job: dg.JobDefinition,
    override: ScheduleOverride | None = None,
    problems: Sequence[str] = (),
) -> dg.ScheduleDefinition:
    """``<id>_schedule``: running by default when the task is enabled, stopped when not.

    Each tick's run key is the task and the tick time, so a daemon restarted mid-tick cannot
    create a second run for the same tick. A tick is skipped with a reason (visible in the
    schedule's tick history) when it is older than the task's catch-up window or its overlap
    policy refuses it (``skip``, the default: a run of the task is queued or running); see
    :mod:`validibot.tasks.policies`.

    An ``enabled: false`` override stops the schedule by default *and* skips every tick, so a
    state stored on the instance (a UI toggle, ``maintenance off``) cannot run it; the stored
    state is left alone, and applies again once the override is removed. ``problems`` (the
    refused overrides entries for this task) go into the description and a tag: the schedule
    keeps the registry's cron and state.
    """
    cron, enabled = effective_schedule(task, override)
    description = f"{task.name} ({task.cron} {task.timezone})"
    tags = {TASK_TAG: task.id}
    if override is not None:
        description = f"OVERRIDDEN by incident file: {override.describe()}. Registry: {description}"
        tags[OVERRIDE_TAG] = override.describe()
    if problems:
        cause = "; ".join(problems)
        description = f"OVERRIDE REFUSED, registry schedule kept: {cause}. {description}"
        tags[OVERRIDE_PROBLEM_TAG] = cause[:1000]
    paused_by = override.describe() if override and override.enabled is False else None

    description = f"{description}. Policies: {policy_summary(task)}"

    def _evaluate(context: dg.ScheduleEvaluationContext):
        if paused_by is not None:
            return dg.SkipReason(f"paused by the incident overrides file: {paused_by}")
        # Catch-up window first, then the overlap policy (validibot_ops/policies.py).
        skip = tick_skip_reason(context, task, IN_PROGRESS)
        if skip:
            return dg.SkipReason(skip)
        tick = context.scheduled_execution_time
        return dg.RunRequest(
            run_key=f"{task.id}:{tick.isoformat()}" if tick is not None else None,
            tags={TRIGGER_TAG: "schedule"},
        )

    try:
        return dg.ScheduleDefinition(
            name=task.schedule_name,
            cron_schedule=cron,
            execution_timezone=task.timezone,
            job=job,
            execution_fn=_evaluate,
            description=description,
            tags=tags,
            default_status=(
                dg.DefaultScheduleStatus.RUNNING if enabled else dg.DefaultScheduleStatus.STOPPED
            ),
        )
    except dg.DagsterInvalidDefinitionError as exc:
        # Dagster's cron check is stricter than croniter's (e.g. "0 0 31 2 *" never fires):
        # it is the one that counts, so it runs here, and the error names where the cron is.
        raise ScheduleDefinitionError(f"{cron_source(task, override)}: {exc}") from exc


class ScheduleDefinitionError(ValueError):
    """Dagster refused a task's schedule; the message names the registry entry or the
    overrides file and key its cron came from."""


def cron_source(task: MaintenanceTask, override: ScheduleOverride | None) -> str:
    """Where the schedule's cron was written: the overrides file and key, or the registry."""
    if override is not None and override.cron is not None:
        where = override.source or "the incident overrides file"
        return f"{where}: task {task.id!r}: key 'cron' ({override.cron!r})"
    return f"scheduled task {task.id!r} (registry entry): cron {task.cron!r}"
