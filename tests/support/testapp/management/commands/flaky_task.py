"""Fails on its first call and succeeds on the next, tracked in a marker file."""

import os
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from validibot.core.maintenance import MaintenanceCommand

MARKER_ENV = "VALIDIBOT_TEST_FLAKY_MARKER"


class Command(MaintenanceCommand):
    help = f"Test-only: fail once, then succeed (marker file from ${MARKER_ENV})."
    task_name = "flaky_task"
    count_names = ("attempt",)

    def perform(self, options: dict[str, Any]) -> None:
        marker = Path(os.environ.get(MARKER_ENV) or "/tmp/validibot-flaky-marker")
        attempts = int(marker.read_text()) if marker.exists() else 0
        marker.write_text(str(attempts + 1))
        self.counts["attempt"] = attempts + 1
        if attempts == 0:
            raise CommandError("flaky_task: simulated failure on the first attempt")
