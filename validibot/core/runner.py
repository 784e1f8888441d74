"""Plain callables that run one registry task in-process and return its JSON summary.

No Dagster and no Celery here: the Dagster op, the tests and a Django shell all call these.

    >>> from validibot.core.runner import purge_expired_submissions
    >>> purge_expired_submissions()["status"]
    'completed'

Requires Django to be set up (the Dagster resource does it; tests and shells already have).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

from django.core.management import call_command
from django.core.management.base import CommandError

from validibot.core.batches import StopCheck, stop_control
from validibot.core.maintenance import parse_summary
from validibot.tasks.registry import (
    BUILTIN_TASKS,
    MaintenanceTask,
    get_task,
)


class LineStream(io.TextIOBase):
    """A text stream that keeps everything written and hands each complete line to a callback."""

    def __init__(self, on_line: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self._on_line = on_line
        self._pending = ""
        self._chunks: list[str] = []

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._chunks.append(text)
        if self._on_line is not None:
            self._pending += text
            *lines, self._pending = self._pending.split("\n")
            for line in lines:
                self._on_line(line)
        return len(text)

    def flush_pending(self) -> None:
        if self._on_line is not None and self._pending:
            self._on_line(self._pending)
        self._pending = ""

    def getvalue(self) -> str:
        return "".join(self._chunks)


class TaskFailed(Exception):  # noqa: N818  (public name; reads as the condition)
    """A task's command ended without a summary (bad arguments, missing command, crash)."""


def run_task_command(
    task: MaintenanceTask | str,
    extra_args: Sequence[str] = (),
    on_stdout: Callable[[str], None] | None = None,
    on_stderr: Callable[[str], None] | None = None,
    *,
    should_stop: StopCheck | None = None,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Run a registry task's command in-process and return its summary dict.

    The summary's ``status`` is ``"completed"``; ``"failed"`` when the command failed after
    starting its work (the summary then has an ``error``); ``"stopped"`` when it stopped at a
    batch boundary because ``should_stop()`` returned a reason or ``deadline`` (a
    ``time.time()`` epoch) passed (the summary then has a ``reason``: the one returned, or
    ``"hard time limit passed"``); ``"busy"`` when another execution of the task holds its
    lock (nothing was changed). ``should_stop`` is called between every two batches: keep
    it cheap. A command that could not start (unknown command, bad arguments) raises
    :class:`TaskFailed` naming the task.
    """
    definition = _resolve(task)
    stdout, stderr = LineStream(on_stdout), LineStream(on_stderr)
    try:
        with stop_control(should_stop=should_stop, deadline=deadline):
            call_command(
                definition.command, *definition.args, *extra_args, stdout=stdout, stderr=stderr
            )
    except CommandError as exc:
        summary = parse_summary(stdout.getvalue())
        if summary is None:
            raise TaskFailed(f"task {definition.id!r} ({definition.command}): {exc}") from exc
        return summary
    finally:
        stdout.flush_pending()
        stderr.flush_pending()
    summary = parse_summary(stdout.getvalue())
    if summary is None:
        raise TaskFailed(f"task {definition.id!r} ({definition.command}) printed no JSON summary")
    return summary


def _resolve(task: MaintenanceTask | str) -> MaintenanceTask:
    if isinstance(task, MaintenanceTask):
        return task
    definition = get_task(task)
    if definition is None:
        raise KeyError(f"no scheduled task with id {task!r}")
    return definition


def _make_callable(task_id: str) -> Callable[..., dict[str, Any]]:
    def run(*extra_args: str) -> dict[str, Any]:
        return run_task_command(task_id, extra_args)

    run.__name__ = run.__qualname__ = task_id
    run.__doc__ = f"Run the {task_id!r} scheduled task now and return its summary."
    return run


# One module-level callable per built-in task (downstream tasks: use run_task_command).
purge_expired_submissions = _make_callable("purge_expired_submissions")
purge_expired_outputs = _make_callable("purge_expired_outputs")
process_purge_retries = _make_callable("process_purge_retries")
cleanup_stuck_runs = _make_callable("cleanup_stuck_runs")
verify_validator_deployments = _make_callable("verify_validator_deployments")
cleanup_orphaned_containers = _make_callable("cleanup_orphaned_containers")
cleanup_idempotency_keys = _make_callable("cleanup_idempotency_keys")
cleanup_callback_receipts = _make_callable("cleanup_callback_receipts")
clear_sessions = _make_callable("clear_sessions")
send_periodic_emails = _make_callable("send_periodic_emails")
enforce_audit_retention = _make_callable("enforce_audit_retention")
purge_stale_oidc_clients = _make_callable("purge_stale_oidc_clients")
prune_dagster_history = _make_callable("prune_dagster_history")

BUILTIN_CALLABLES = {task.id: globals()[task.id] for task in BUILTIN_TASKS}
