"""An IO manager that stores nothing: a task's summary lives in the event log, not on disk."""

from __future__ import annotations

from typing import Any

import dagster as dg

SUMMARY_IO_MANAGER_KEY = "summary_io_manager"


class SummaryIOManager(dg.ConfigurableIOManager):
    """Keeps op outputs only as event-log metadata.

    The default filesystem IO manager would pickle every summary under ``DAGSTER_HOME`` on
    whichever worker ran the step (hundreds of files a day, and a volume the Celery workers
    would have to share). Nothing downstream reads these outputs, so nothing is stored.
    """

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        return None

    def load_input(self, context: dg.InputContext) -> Any:
        raise dg.DagsterInvariantViolationError(
            "maintenance task summaries are not stored; read them from the run's metadata"
        )
