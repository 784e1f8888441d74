"""The op factory: one op per registry task, calling its management command through Django."""

# No ``from __future__ import annotations`` here: Dagster reads the op signature's
# annotations (config class, resource type) at decoration time and needs real types.

import time
from collections.abc import Callable
from typing import Any

import dagster as dg
from dagster import DagsterExecutionInterruptedError

from validibot.tasks.registry import MaintenanceTask
from validibot.tasks.triggers import trigger_of
from validibot.tasks.vocabulary import OVER_STATUSES, STOPPING_STATUSES
from validibot_ops.checks import evaluate_task_checks
from validibot_ops.io import SUMMARY_IO_MANAGER_KEY
from validibot_ops.resources import DjangoResource
from validibot_ops.tags import CELERY_QUEUE_TAG, TASK_TAG, TRIGGER_TAG, task_asset_key


class TaskRunConfig(dg.Config):
    """Run config of every maintenance op (set it in the launchpad, ``dagster job launch
    --config`` or a GraphQL ``runConfigData``)."""

    dry_run: bool = False
    """Pass ``--dry-run``: report what would change and change nothing."""

    extra_args: list[str] = []
    """Arguments appended after the registry's own, e.g. ``["--batch-size", "50"]``."""


def build_retry_policy(task: MaintenanceTask) -> dg.RetryPolicy | None:
    """The registry's retry budget as a Dagster policy: exponential backoff with jitter."""
    if task.max_retries == 0:
        return None
    return dg.RetryPolicy(
        max_retries=task.max_retries,
        delay=task.retry_delay_seconds,
        backoff=dg.Backoff.EXPONENTIAL,
        jitter=dg.Jitter.PLUS_MINUS,
    )


def _numeric_counts(summary: dict[str, Any]) -> dict[str, int | float]:
    counts = summary.get("counts") or {}
    return {
        k: v for k, v in counts.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }


OVER_RUN_STATUSES = frozenset(dg.DagsterRunStatus(name) for name in OVER_STATUSES)


def _refuse_if_run_finished(context: dg.OpExecutionContext, task: MaintenanceTask):
    """Never start a command for a run that is already over.

    A Celery step can arrive after its run ended: Redis redelivers an unacknowledged step
    once the visibility timeout passes (a worker was killed), and terminating a run does not
    revoke steps already queued (dagster-io/dagster#23222). Running the command then would
    do work nobody is watching; the step fails instead, saying why.
    """
    run = context.instance.get_run_by_id(context.run_id)
    if run is not None and run.status in OVER_RUN_STATUSES:
        raise dg.Failure(
            description=(
                f"{task.id}: run {context.run_id} is already {run.status.value}; "
                "not executing a late (redelivered or uncancelled) step"
            ),
            allow_retries=False,
        )


CANCELED_REASON = "run canceled"
STOPPING_RUN_STATUSES = frozenset(dg.DagsterRunStatus(name) for name in STOPPING_STATUSES)


def _run_is_stopping(context: dg.OpExecutionContext) -> bool:
    run = context.instance.get_run_by_id(context.run_id)
    return run is not None and run.status in STOPPING_RUN_STATUSES


def build_stop_check(context: dg.OpExecutionContext) -> Callable[[], str | None]:
    """What the command asks between batches: ``"run canceled"`` once the run is being
    terminated (CANCELING), else ``None``. One run-storage read per batch."""

    def should_stop() -> str | None:
        return CANCELED_REASON if _run_is_stopping(context) else None

    return should_stop


def run_deadline(context: dg.OpExecutionContext, task: MaintenanceTask) -> float:
    """Epoch seconds past which the command stops: the run's start plus the hard limit."""
    record = context.instance.get_run_record_by_id(context.run_id)
    started = record.start_time if record is not None and record.start_time else time.time()
    return started + task.hard_time_limit_seconds


def raise_for_stop(
    context: dg.OpExecutionContext, task: MaintenanceTask, summary: dict, metadata: dict
) -> None:
    """Map a summary that did not finish the work onto the run's outcome.

    - ``stopped`` while the run is being terminated: interrupt the step, so Dagster ends the
      run CANCELED (never retried);
    - ``stopped`` otherwise (the hard time limit passed): a failure without retries, since a
      retry would hit the same limit;
    - ``busy`` (another execution of the task holds its lock, nothing changed): a failure
      without retries, so it never reads as a fresh success and nothing retries into the
      execution that holds the lock.
    """
    status = summary.get("status")
    reason = summary.get("reason") or "no reason given"
    if status == "stopped" and (reason == CANCELED_REASON or _run_is_stopping(context)):
        context.log.info(f"{task.id} stopped at a batch boundary: {reason}")
        raise DagsterExecutionInterruptedError(f"{task.id} stopped: {reason}")
    if status == "stopped":
        raise dg.Failure(
            description=f"{task.id} stopped before finishing: {reason} "
            f"(hard time limit {task.hard_time_limit_seconds} s)",
            metadata=metadata,
            allow_retries=False,
        )
    if status == "busy":
        raise dg.Failure(
            description=f"{task.id} is busy: another execution of this task holds its lock; "
            "this run changed nothing",
            metadata=metadata,
            allow_retries=False,
        )


def _record_trigger(context: dg.OpExecutionContext) -> None:
    """Store the resolved ``validibot/trigger`` on the run (``manual`` -> ui/cli, copies -> retry).

    Runs Dagster creates for us (Launchpad, ``dagster job launch``, re-execution, run retries)
    only carry the job's default or their parent's value; writing the resolved one here makes
    the Runs list, ``runsOrError`` tag filters and the status command agree.
    """
    tags = context.run.tags
    resolved = trigger_of(tags)
    if tags.get(TRIGGER_TAG) != resolved:
        context.instance.add_run_tags(context.run_id, {TRIGGER_TAG: resolved})


def _what_runs(task: MaintenanceTask) -> str:
    """``manage.py <command>``, or the Celery task an upstream-shaped entry names."""
    if task.command:
        return f"manage.py {task.command}"
    return f"Celery task {task.celery_task} in-process"


def build_task_op(task: MaintenanceTask) -> dg.OpDefinition:
    """One op, named after the task, that runs its command and reports the JSON summary.

    - A command that cannot start (bad arguments, unknown command) fails without retries:
      retrying cannot fix it.
    - A summary with ``status: failed`` fails the op; the retry policy applies.
    - ``stopped`` / ``busy`` summaries: see :func:`raise_for_stop` (canceled, no retry).
    - The command gets a stop check (run canceled) and a deadline (run start + hard limit),
      checked between batches.
    - Any other exception (a lost database connection, say) fails the op; retries apply.
    - Once the command returned (whatever its status), the task's outcome checks are
      evaluated and logged in this run (:func:`~validibot_ops.checks.evaluate_task_checks`).
    - On success the summary is the op's output, its counts are output metadata, and a real
      (non dry-run) run materializes the task's asset so the UI plots the counts over time.
    """

    @dg.op(
        name=task.id,
        description=f"{task.name}: runs {_what_runs(task)}. {task.description}".strip(),
        retry_policy=build_retry_policy(task),
        tags={CELERY_QUEUE_TAG: task.queue, TASK_TAG: task.id},
        out=dg.Out(dict, io_manager_key=SUMMARY_IO_MANAGER_KEY),
    )
    def _task_op(context: dg.OpExecutionContext, config: TaskRunConfig, django: DjangoResource):
        from validibot.core.runner import TaskFailed

        _refuse_if_run_finished(context, task)
        _record_trigger(context)
        args = (["--dry-run"] if config.dry_run else []) + list(config.extra_args)
        log = context.log
        context.log.info(f"running {_what_runs(task)} {' '.join([*task.args, *args])}".rstrip())
        try:
            summary = django.run_command(
                task,
                args,
                on_stdout=log.info,
                on_stderr=log.warning,
                should_stop=build_stop_check(context),
                deadline=run_deadline(context, task),
            )
        except TaskFailed as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        # Whatever the command reported, the run says whether the data is clean now.
        yield from evaluate_task_checks(task, django)

        counts = _numeric_counts(summary)
        metadata: dict[str, Any] = {
            "status": summary.get("status", "unknown"),
            "dry_run": bool(summary.get("dry_run")),
            "duration_s": float(summary.get("duration_s") or 0.0),
            **counts,
        }
        raise_for_stop(context, task, summary, metadata)
        if summary.get("status") == "failed":
            error = summary.get("error") or "the command reported status 'failed'"
            raise dg.Failure(description=f"{task.id}: {error}", metadata=metadata)
        if metadata["duration_s"] > task.soft_time_limit_seconds:
            # Past the soft limit the run still counts; operators are told before the hard
            # limit (dagster/max_runtime) starts failing it.
            context.log.warning(
                f"{task.id} took {metadata['duration_s']:.0f}s, over its soft limit of "
                f"{task.soft_time_limit_seconds}s (hard limit {task.hard_time_limit_seconds}s)"
            )

        asset_event = dg.AssetObservation if metadata["dry_run"] else dg.AssetMaterialization
        yield asset_event(
            asset_key=task_asset_key(task),
            description=f"{task.id} {'dry run' if metadata['dry_run'] else 'run'}",
            metadata=metadata,
        )
        yield dg.Output(summary, metadata=metadata)

    return _task_op
