"""purge_expired_submissions, slowed down: a pause per stored file, inside the batch's transaction.

The production purge deletes each row's stored file while the batch's rows are locked, then
marks the rows purged in the same transaction. Pausing in that file deletion puts most of the
run's time inside open batch transactions, so a worker killed mid-run almost always dies
mid-batch. Every committed deletion is appended to ``$VALIDIBOT_TEST_PURGE_LOG`` (on commit
only, as ``<pid> <file name>``), so a test can tell whether a row was ever purged twice.
"""

import os
import time
from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser
from django.db import transaction

from validibot.retention.management.commands.purge_expired_submissions import (
    Command as PurgeExpiredSubmissions,
)
from validibot.tasks.registry import get_task

PURGE_LOG_ENV = "VALIDIBOT_TEST_PURGE_LOG"


def _log_commit(name: str) -> None:
    log = os.environ.get(PURGE_LOG_ENV)
    if log:
        with Path(log).open("a") as fh:
            fh.write(f"{os.getpid()} {name}\n")


class Command(PurgeExpiredSubmissions):
    help = (
        "Test-only: purge_expired_submissions with --pause seconds per stored file (inside the "
        f"batch transaction); committed deletions are logged to ${PURGE_LOG_ENV}."
    )
    task_name = "slow_purge_submissions"

    def declared_counts(self) -> tuple[str, ...]:
        # The counts of the command it slows down (no registry entry is named after this one).
        return get_task("purge_expired_submissions").count_names

    def add_task_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--pause", type=float, default=0.2)

    def perform(self, options: dict[str, Any]) -> None:
        storage = self.target.model._meta.get_field("file").storage
        delete = storage.delete
        pause = options["pause"]

        def slow_delete(name: str) -> None:
            time.sleep(pause)  # the slowness under test, inside the open batch transaction
            delete(name)
            transaction.on_commit(lambda: _log_commit(name))

        storage.delete = slow_delete
        try:
            super().perform(options)
        finally:
            del storage.delete
