"""Run tags and run-status names, declared once for the Django side and the Dagster side.

Plain strings: Dagster's ``DagsterRunStatus`` values are these names, so the code location
builds its enum sets from here and the Django side (GraphQL client, HTTP trigger, status
command) compares the strings GraphQL returns.
"""

from __future__ import annotations

TASK_TAG = "validibot/task"
"""Every run of a maintenance job carries its registry id; dagster.yaml limits it to 1 at a time."""

EXCLUSIVE_TAG = "validibot/exclusive"
"""The task id again, on jobs of tasks whose runs must not overlap (every overlap policy but
``allow``); dagster.yaml's tag concurrency limit counts it, 1 run per value at a time."""

TRIGGER_TAG = "validibot/trigger"
"""Which surface started the run: schedule, ui, cli, graphql, http, shell (a Celery task's
``.delay()``), demo, retry (jobs default it to ``manual``; the op records the resolved value:
validibot.tasks.triggers)."""

OVERRIDE_TAG = "validibot/override"
"""Set on schedules whose cron or enabled state comes from the incident overrides file."""

OVERRIDE_PROBLEM_TAG = "validibot/override-problem"
"""Set on schedules whose overrides entry (or whole file) was refused: the cause; the schedule
keeps the registry's cron and state."""

GENERATED_SCHEDULES = ("validibot_outcome_checks_schedule",)
"""Schedules the code location builds that belong to no registry task (the hourly outcome
checks): a sync plan knows them, so it neither touches nor reports them."""

IDEMPOTENCY_TAG = "validibot/idempotency-key"
"""Set on a run launched over HTTP with an Idempotency-Key, so a retry can find that run."""

CELERY_QUEUE_TAG = "dagster-celery/queue"
"""dagster-celery routes each step (or, with the run launcher, each run) to this queue."""

MAX_RUNTIME_TAG = "dagster/max_runtime"
"""Run monitoring fails a run that exceeds this many seconds (the task's hard time limit)."""

ASSET_PREFIX = "validibot_maintenance"
"""Asset key prefix of the per-task assets whose materializations plot each run's counts."""

QUEUED = "QUEUED"
NOT_STARTED = "NOT_STARTED"
STARTING = "STARTING"
STARTED = "STARTED"
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
CANCELED = "CANCELED"
CANCELING = "CANCELING"

# Every set of run statuses the project uses, here and nowhere else (a layout test refuses a
# set of run statuses written anywhere else). Each says what it is for.
WAITING_STATUSES: frozenset[str] = frozenset({QUEUED, NOT_STARTED})
"""Queued and not yet handed to a worker: ``buffer_one`` counts these as the one waiting."""

STARTABLE_STATUSES: frozenset[str] = frozenset({NOT_STARTED, STARTING})
"""A warm run task may start executing a run only in these (a late or redelivered one finds
its run past them and writes nothing)."""

IN_PROGRESS_STATUSES: frozenset[str] = frozenset(
    {QUEUED, NOT_STARTED, STARTING, STARTED, CANCELING}
)
"""The task is busy: a new tick is skipped (or buffered), never queued beside it."""

STOPPING_STATUSES: frozenset[str] = frozenset({CANCELING, CANCELED})
"""The run is being terminated (or was): the command's stop check answers ``run canceled``."""

FINISHED_STATUSES: frozenset[str] = frozenset({SUCCESS, FAILURE, CANCELED})
"""A run in one of these will never change again."""

OVER_STATUSES: frozenset[str] = FINISHED_STATUSES | {CANCELING}
"""A run that is finished or being stopped: no step of it may start any more."""

FAILED_STATUSES: frozenset[str] = frozenset({FAILURE})
"""Statuses the health rule counts as a failed run."""
