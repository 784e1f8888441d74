"""Check, when the code location loads, that every task's management command exists, and
that every upstream-shaped task's Celery task name is carried by a registered Celery task.

Without ``django.setup()`` (definitions must load without a database): the settings module
is only read for ``INSTALLED_APPS``, and each app's ``management/commands/<name>.py`` is looked
up with ``importlib.util.find_spec``, which imports packages but no models.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable

from validibot.core.celery_tasks import missing_task_problems
from validibot.tasks.registry import MaintenanceTask, RegistryError
from validibot_ops.resources import DEFAULT_SETTINGS_MODULE


def _app_module(entry: str) -> str:
    """``pkg.apps.PkgConfig`` -> ``pkg``; a plain module path is returned as it is."""
    try:
        if importlib.util.find_spec(entry) is not None:
            return entry
    except (ImportError, ValueError):
        pass
    parts = entry.split(".")
    if len(parts) > 2 and parts[-2] == "apps":
        return ".".join(parts[:-2])
    return entry.rsplit(".", 1)[0]


def _has_command(app: str, command: str) -> bool:
    try:
        return importlib.util.find_spec(f"{app}.management.commands.{command}") is not None
    except (ImportError, ValueError):
        return False


def available_commands(installed_apps: Iterable[str], wanted: Iterable[str]) -> set[str]:
    """The subset of ``wanted`` that Django would find (``django.core`` or an installed app)."""
    apps = ["django.core", *(_app_module(a) for a in installed_apps)]
    return {c for c in wanted if any(_has_command(app, c) for app in apps)}


def check_commands(tasks: Iterable[MaintenanceTask]) -> None:
    """Raise :class:`RegistryError` naming each task whose command no installed app provides."""
    tasks = list(tasks)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", DEFAULT_SETTINGS_MODULE)
    from django.conf import settings

    commanded = [t for t in tasks if t.command]
    found = available_commands(settings.INSTALLED_APPS, {t.command for t in commanded})
    problems = [
        f"task {t.id!r}: management command {t.command!r} not found in INSTALLED_APPS "
        f"({os.environ['DJANGO_SETTINGS_MODULE']})"
        for t in commanded
        if t.command not in found
    ]
    problems += missing_task_problems(
        {t.label: t.celery_task for t in tasks if not t.command},
        [_app_module(app) for app in settings.INSTALLED_APPS],
    )
    if problems:
        raise RegistryError("; ".join(problems))
