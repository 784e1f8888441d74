"""Does nothing and reports it: the cheapest possible maintenance task (daemon tests, bench)."""

from typing import Any

from validibot.core.maintenance import MaintenanceCommand


class Command(MaintenanceCommand):
    help = "Test-only: do nothing, report one unit of work."
    task_name = "noop_task"
    count_names = ("noop",)

    def perform(self, options: dict[str, Any]) -> None:
        self.counts["noop"] += 1
