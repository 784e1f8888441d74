"""Which surface started a run, read from its tags (no Django, no Dagster import).

Every surface we own sets ``validibot/trigger`` explicitly (schedule, graphql, http, demo).
Dagster creates runs we never see being submitted: a Launchpad launch, ``dagster job
launch``/``job execute``, a re-execution or a run retry. Those carry the job's default
``validibot/trigger=manual`` plus whatever Dagster adds, and :func:`trigger_of` resolves them;
the op then records the resolved value on the run, so every run ends up with one of
:data:`TRIGGERS`.
"""

from __future__ import annotations

from collections.abc import Mapping

from validibot.tasks.vocabulary import TRIGGER_TAG

__all__ = ["MANUAL", "TRIGGERS", "TRIGGER_TAG", "trigger_of"]

MANUAL = "manual"
"""The job-level default: a run launched without saying where from."""

TRIGGERS = ("schedule", "ui", "cli", "graphql", "http", "shell", "demo", "retry")

# Dagster's own tags (dagster._core.storage.tags), copied so this module imports nothing.
FROM_UI_TAG = "dagster/from_ui"
PARENT_RUN_ID_TAG = "dagster/parent_run_id"
SCHEDULE_NAME_TAG = "dagster/schedule_name"


def trigger_of(tags: Mapping[str, str]) -> str:
    """The run's trigger: ``retry`` for re-executions and run retries (they copy their parent's
    tags), ``ui`` for Launchpad launches, ``schedule`` for ticks, else the explicit tag; a bare
    ``manual`` (``dagster job launch``/``execute`` without ``--tags``) is ``cli``; any other
    explicit value is kept as given."""
    if tags.get(PARENT_RUN_ID_TAG):
        return "retry"
    if tags.get(FROM_UI_TAG):
        return "ui"
    if tags.get(SCHEDULE_NAME_TAG):
        return "schedule"
    explicit = tags.get(TRIGGER_TAG, "")
    return explicit if explicit and explicit != MANUAL else "cli"
