"""Issue 28 point 4: doctor names why a code location failed, and reads the overrides from the
schedules the code location loaded (their tags), not from its own environment.

The schedules come from the real code location (``build_definitions``), the load error from
Dagster's own serializer and GraphQL type, so the shapes are the ones doctor reads over HTTP.
"""

from __future__ import annotations

import json
import sys

import pytest

from validibot.operations.dagster_client import Location, ScheduleInfo
from validibot.operations.management.commands.doctor import (
    FAIL,
    OK,
    WARN,
    load_error_cause,
    override_notes,
)
from validibot.tasks.overrides import OVERRIDES_ENV
from validibot.tasks.registry import MaintenanceTask, register
from validibot_ops.definitions import build_definitions


def _as_graphql(defs, running: set[str]) -> dict[str, ScheduleInfo]:
    """The loaded schedules as GraphQL reports them; ``running``: states stored RUNNING."""
    return {
        s.name: ScheduleInfo(
            name=s.name,
            job_name=s.job_name,
            status="RUNNING" if s.name in running else s.default_status.value,
            default_status=s.default_status.value,
            cron=str(s.cron_schedule),
            timezone=s.execution_timezone,
            state_id=s.name,
            location=Location("validibot_ops", "__repository__"),
            tags=dict(s.tags),
        )
        for s in defs.schedules
    }


def test_the_overrides_row_names_the_refused_entry_from_the_code_locations_view(
    tmp_path, monkeypatch
):
    path = tmp_path / "overrides.json"
    path.write_text(
        json.dumps(
            {
                "clear_sessions": {"cron": "61 * * * *", "reason": "INC-1", "author": "a"},
                "purge_expired_submissions": {"enabled": False, "reason": "INC-2", "author": "b"},
            }
        )
    )
    monkeypatch.setenv(OVERRIDES_ENV, str(path))
    schedules = _as_graphql(build_definitions(), running={"purge_expired_submissions_schedule"})
    monkeypatch.delenv(OVERRIDES_ENV)  # doctor's own environment has no file
    status, notes = override_notes(schedules)
    text = "; ".join(notes)
    assert status == FAIL
    assert f"refused, registry schedule kept: {path}: task 'clear_sessions'" in text
    assert "not a valid five-field cron" in text
    assert "in force: purge_expired_submissions_schedule: enabled=False (INC-2; by b)" in text
    assert "purge_expired_submissions_schedule: stored state RUNNING under enabled: false" in text


def test_no_overrides_is_ok(monkeypatch):
    monkeypatch.delenv(OVERRIDES_ENV, raising=False)
    assert override_notes(_as_graphql(build_definitions(), running=set())) == (OK, [])


def test_an_override_in_force_is_a_warning(tmp_path, monkeypatch):
    path = tmp_path / "overrides.yaml"
    path.write_text("clear_sessions:\n  enabled: false\n  reason: INC-3\n  author: c\n")
    monkeypatch.setenv(OVERRIDES_ENV, str(path))
    status, notes = override_notes(_as_graphql(build_definitions(), running=set()))
    assert status == WARN and len(notes) == 1


def test_the_code_location_row_shows_the_first_line_of_the_error_chain():
    """The load error as the webserver serves it: Dagster's wrapper names only the module and
    the executable; the chain's first error names the registry entry."""
    from dagster._core.errors import DagsterUserCodeLoadError, user_code_error_boundary
    from dagster._utils.error import serializable_error_info_from_exc_info
    from dagster_graphql.schema.errors import GraphenePythonError

    register(MaintenanceTask(id="feb_31", name="Never", command="noop_task", cron="0 0 31 2 *"))
    try:
        with user_code_error_boundary(  # what Dagster's loader wraps a definitions load in
            DagsterUserCodeLoadError,
            lambda: (
                "Error occurred during the loading of Dagster definitions in\n"
                f"executable_path={sys.executable}, module_name=validibot_ops.definitions"
            ),
        ):
            build_definitions()
    except DagsterUserCodeLoadError:
        info = serializable_error_info_from_exc_info(sys.exc_info())
    error = GraphenePythonError(info)
    served = {
        "message": error.resolve_message(None),
        "errorChain": [
            {"error": {"message": link.error.resolve_message(None)}}
            for link in error.resolve_errorChain(None)
        ],
    }
    assert sys.executable in served["message"]  # what the row used to show
    cause = load_error_cause(served)
    assert cause.startswith("validibot_ops.schedules.ScheduleDefinitionError: scheduled task")
    assert "'feb_31' (registry entry): cron '0 0 31 2 *'" in cause
    assert "\n" not in cause


@pytest.mark.parametrize("served", [{"message": "boom\n"}, {"message": ""}])
def test_without_a_chain_the_errors_own_first_line_is_shown(served):
    assert load_error_cause(served) in {"boom", "failed to load (no message)"}
