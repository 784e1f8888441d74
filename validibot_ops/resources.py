"""The Django resource: sets Django up when a run starts, never when definitions load."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import dagster as dg

from validibot.tasks.registry import MaintenanceTask

DEFAULT_SETTINGS_MODULE = "config.settings.local"


class DjangoResource(dg.ConfigurableResource):
    """Runs Validibot's management commands in-process for an op.

    ``django.setup()`` happens when the resource is first used (:meth:`ensure_django`, called
    by every command it runs), so loading the code location (the webserver, the daemon,
    ``dagster definitions validate``) never imports the ORM or touches a database. Database
    connections are checked before and closed after every command, so a long-lived Celery
    worker never reuses a connection the server has closed.

    Attributes:
        settings_module: ``DJANGO_SETTINGS_MODULE`` to use when the environment sets none.
    """

    settings_module: str = DEFAULT_SETTINGS_MODULE

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Only the settings module here, not django.setup(): ``dagster job execute`` builds
        # every resource again after the run, in the launching process, for its result
        # object; with the Celery executor that process runs no op, and setting Django up
        # there cost ~0.4 s of CPU per run (bench/orchestration.py).
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", self.settings_module)

    def ensure_django(self) -> None:
        """Set Django up once per process (``django.setup()`` would reconfigure logging on
        every call, i.e. on every command a long-lived worker runs)."""
        from django.apps import apps

        if not apps.ready:
            import django

            django.setup()

    def run_command(
        self,
        task: MaintenanceTask,
        extra_args: Sequence[str] = (),
        on_stdout: Callable[[str], None] | None = None,
        on_stderr: Callable[[str], None] | None = None,
        *,
        should_stop: Callable[[], str | None] | None = None,
        deadline: float | None = None,
    ) -> dict[str, Any]:
        """Run the task's command and return its JSON summary (see ``run_task_command``).

        ``should_stop`` (``None`` to carry on, else the reason) is asked between batches and
        ``deadline`` (a ``time.time()`` epoch) is checked there too; either ends the command
        at the next batch boundary with ``status: "stopped"``.
        """
        self.ensure_django()
        from django.db import close_old_connections, connections

        from validibot.core.runner import run_task_command

        close_old_connections()
        try:
            return run_task_command(
                task,
                extra_args,
                on_stdout=on_stdout,
                on_stderr=on_stderr,
                should_stop=should_stop,
                deadline=deadline,
            )
        finally:
            connections.close_all()
