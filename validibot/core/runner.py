"""Run one registry task in-process and return its JSON summary: its management command, or
(for a task registered in upstream's shape) its Celery task's function.

No Dagster here: the Dagster op, the tests and upstream's Celery tasks
(``validibot.core.tasks.scheduled_tasks``, the per-task callables of a Django shell) call it.

    >>> from validibot.core.runner import run_task_command
    >>> run_task_command("purge_expired_submissions")["status"]
    'completed'

Requires Django to be set up (the Dagster resource does it; tests and shells already have).
"""

from __future__ import annotations

import inspect
import io
import time
from collections.abc import Callable, Sequence
from typing import Any

from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import InterfaceError, OperationalError

from validibot.core.batches import StopCheck, stop_control
from validibot.core.locks import execution_lock
from validibot.core.maintenance import BUSY_REASON, overlap_allowed, parse_summary
from validibot.tasks.registry import MaintenanceTask, get_task


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
    if not definition.command:
        return run_celery_task(
            definition, extra_args, on_stdout, should_stop=should_stop, deadline=deadline
        )
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


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError, OSError)
"""What upstream's Celery wrappers retry (a lost database; ``OSError`` covers connection errors
and timeouts): raised as they are, so the registry's retry policy applies. Anything else fails
the run without retries."""


def run_celery_task(
    definition: MaintenanceTask,
    extra_args: Sequence[str] = (),
    on_stdout: Callable[[str], None] | None = None,
    *,
    should_stop: StopCheck | None = None,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Run an upstream-shaped task: call its Celery task's function in-process.

    The task is found by its registered name (:mod:`validibot.core.celery_tasks`). A real run
    holds the task's lock (unless its overlap policy is ``allow``), as a command does; the
    stop check and deadline are in force, so a maintenance command the function calls stops
    between batches. The function's dict is the summary; when its ``output`` ends with a
    command's JSON summary line, that summary's status and counts are the run's. Returns
    ``status: busy`` when the lock is taken. Raises :class:`TaskFailed` (no retries) for
    arguments it cannot take, an unknown name, an exception that is not transient or a
    status other than ``completed``/``stopped``/``busy``; transient errors propagate.
    """
    dry_run = list(extra_args) == ["--dry-run"]
    label = f"task {definition.label!r} (Celery task {definition.celery_task})"
    if extra_args and not dry_run:
        raise TaskFailed(f"{label} takes no command-line arguments, got {list(extra_args)}")
    function = _celery_function(definition, label)
    kwargs = {"dry_run": True} if dry_run else {}
    if dry_run and "dry_run" not in inspect.signature(function.run).parameters:
        raise TaskFailed(f"{label} has no dry_run parameter: a dry run cannot be asked of it")
    started = time.monotonic()
    lock = execution_lock(
        definition.id, dry_run=dry_run, overlap_allowed=overlap_allowed(definition.id)
    )
    with lock as acquired, stop_control(should_stop=should_stop, deadline=deadline):
        if not acquired:
            return {"task": definition.id, "status": "busy", "reason": BUSY_REASON}
        try:
            result = function(**kwargs)
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:  # noqa: BLE001  (named and re-raised as the run's failure)
            raise TaskFailed(f"{label} raised {type(exc).__name__}: {exc}") from exc
    return _celery_summary(definition, result, label, dry_run, started, on_stdout)


def _celery_function(definition: MaintenanceTask, label: str) -> Any:
    from django.apps import apps

    from validibot.core.celery_tasks import find_task, import_task_modules

    function = find_task(definition.celery_task)
    if function is None:  # its module is not imported yet in this process
        import_task_modules(config.name for config in apps.get_app_configs())
        function = find_task(definition.celery_task)
    if function is None:
        raise TaskFailed(f"{label}: no registered Celery task has that name")
    return function


def _celery_summary(
    definition: MaintenanceTask,
    result: object,
    label: str,
    dry_run: bool,
    started: float,
    on_stdout: Callable[[str], None] | None,
) -> dict[str, Any]:
    if not isinstance(result, dict) or not isinstance(result.get("status"), str):
        raise TaskFailed(f"{label} returned {result!r:.200}, not a dict with a 'status'")
    output = result.get("output") if isinstance(result.get("output"), str) else ""
    for line in output.splitlines():
        if on_stdout is not None:
            on_stdout(line)
    inner = parse_summary(output) or {}
    status = inner.get("status") or result["status"]
    if status not in {"completed", "stopped", "busy"}:
        detail = result.get("error") or inner.get("error") or ""
        raise TaskFailed(f"{label} returned status {status!r}{': ' if detail else ''}{detail}")
    return {
        "task": definition.id,
        "dry_run": dry_run,
        "duration_s": round(time.monotonic() - started, 3),
        **{k: v for k, v in result.items() if k != "output"},
        **inner,
        "status": status,
    }


def _resolve(task: MaintenanceTask | str) -> MaintenanceTask:
    if isinstance(task, MaintenanceTask):
        return task
    definition = get_task(task)
    if definition is None:
        raise KeyError(f"no scheduled task with id {task!r}")
    return definition
