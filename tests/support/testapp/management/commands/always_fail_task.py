"""Always fails with a recognisable error."""

from typing import Any

from django.core.management.base import CommandError

from validibot.core.maintenance import MaintenanceCommand

ERROR = "always_fail_task: storage backend refused the request (simulated)"


class Command(MaintenanceCommand):
    help = "Test-only: fail every time."
    task_name = "always_fail_task"
    count_names = ("attempt",)

    def perform(self, options: dict[str, Any]) -> None:
        self.counts["attempt"] += 1
        raise CommandError(ERROR)
