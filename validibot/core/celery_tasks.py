"""Celery tasks by registered name, for tasks registered in upstream's shape.

Upstream's registry names each task's Celery task (``celery_task="validibot.clear_sessions"``),
the name given to ``@shared_task(name=...)``, not an import path. Here Celery Beat and Celery's
own workers do not run those tasks: the task's Dagster op finds the function by that name and
calls it in-process. A shared task lands in every Celery app's task registry once its module is
imported, so this module keeps one app (never the current app: dagster-celery's workers have
their own) and imports what Celery's ``autodiscover_tasks`` would: each installed app's
``tasks`` module, plus upstream's ``validibot.core.tasks.scheduled_tasks``.

Importing a ``tasks`` module must not need ``django.setup()`` (the code location checks the
names at load, without Django); upstream's wrappers import only ``call_command`` at the top.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterable
from typing import Any

from celery import Celery

BUILTIN_TASK_MODULE = "validibot.core.tasks.scheduled_tasks"
"""Upstream's wrappers, one per built-in task (``validibot.<id>``)."""


@functools.cache
def celery_app() -> Celery:
    """The app whose registry holds every shared task imported so far (not set as current)."""
    return Celery("validibot", set_as_current=False)


def import_task_modules(app_modules: Iterable[str]) -> dict[str, str]:
    """Import ``<app>.tasks`` for each app (and the built-in wrappers); return the modules that
    exist but failed to import, with the cause. A missing ``tasks`` module is not a problem."""
    failures: dict[str, str] = {}
    for name in [BUILTIN_TASK_MODULE, *(f"{app}.tasks" for app in app_modules)]:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):
                continue  # the app has no tasks module (or is itself missing: not ours to say)
            failures[name] = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # noqa: BLE001  (any import failure is reported, named)
            failures[name] = f"{type(exc).__name__}: {exc}"
    return failures


def find_task(name: str) -> Any | None:
    """The Celery task registered under ``name``, or ``None`` (import its module first)."""
    return celery_app().tasks.get(name)


def missing_task_problems(wanted: dict[str, str], app_modules: Iterable[str]) -> list[str]:
    """For ``{task id: Celery task name}``, a message per name no imported task carries.

    Each message names the task and the Celery name; when a ``tasks`` module failed to import,
    the message says so too, since the task may live there.
    """
    if not wanted:
        return []
    failures = import_task_modules(app_modules)
    problems = []
    for task_id, name in wanted.items():
        if find_task(name) is not None:
            continue
        message = (
            f"scheduled task {task_id!r}: celery_task {name!r} is not the name of any "
            "registered Celery task (the name given to @shared_task(name=...) in an installed "
            "app's tasks module)"
        )
        if failures:
            message += "; these task modules failed to import: " + "; ".join(
                f"{module}: {cause}" for module, cause in failures.items()
            )
        problems.append(message)
    return problems
