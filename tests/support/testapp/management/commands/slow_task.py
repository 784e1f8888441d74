"""Runs for --seconds, writing progress to a file, so tests can kill it mid-run."""

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser

from validibot.core.batches import chunks, run_in_batches
from validibot.core.maintenance import MaintenanceCommand, positive_int

PROGRESS_ENV = "VALIDIBOT_TEST_SLOW_PROGRESS"


class Command(MaintenanceCommand):
    help = f"Test-only: work for --seconds, appending a line per second to ${PROGRESS_ENV}."
    task_name = "slow_task"
    count_names = ("ticks",)

    def add_task_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seconds", type=positive_int, default=30)

    def perform(self, options: dict[str, Any]) -> None:
        progress = os.environ.get(PROGRESS_ENV)

        def tick(_: Sequence[int]) -> None:
            if progress:
                with Path(progress).open("a") as fh:
                    fh.write(f"{os.getpid()}\n")
            time.sleep(1)  # the work being simulated is waiting, on purpose
            self.counts["ticks"] += 1

        # One tick per batch, so a stop request is honoured within a second.
        run_in_batches(
            chunks(range(options["seconds"])),
            tick,
            batch_size=1,
            should_stop=self.should_stop,
            using=None,
        )
