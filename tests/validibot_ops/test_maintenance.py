"""Issue 19 item 5: maintenance mode on a real Dagster instance (SQLite storage in a temp dir).

The code location is loaded in-process (the same definitions the daemon loads, without a code
server subprocess); schedule states go through ``DagsterInstance.start_schedule`` /
``stop_schedule`` / ``reset_schedule``, as the UI and ``sync-schedules`` do. The maintenance row
is in the test database. ``tests/integration/surfaces/test_maintenance_cli.py`` runs the real
``validibot-ops maintenance`` command against a workspace.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.remote_representation.code_location import InProcessCodeLocation
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from validibot.operations import maintenance
from validibot.operations.models import MaintenanceMode
from validibot_ops import maintenance_sensor
from validibot_ops.cli import main
from validibot_ops.maintenance import snapshot, turn_off, turn_on
from validibot_ops.maintenance_sensor import build_maintenance_sensor
from validibot_ops.paths import REPO_ROOT
from validibot_ops.resources import DjangoResource
from validibot_ops.schedule_state import InstanceSchedules

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime.now(UTC)
REQUEST = maintenance.MaintenanceRequest("deploy 12: schema migration", "alice")


@contextlib.contextmanager
def schedules_on(instance: dg.DagsterInstance) -> Iterator[InstanceSchedules]:
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(
            executable_path=sys.executable,
            module_name="validibot_ops.definitions",
            working_directory=str(REPO_ROOT),
        ),
        location_name="validibot_ops",
    )
    with InProcessCodeLocation(origin, instance=instance) as location:
        [repository] = location.get_repositories().values()
        yield InstanceSchedules(instance, {s.name: s for s in repository.get_schedules()})


def _mixed_states(schedules: InstanceSchedules) -> None:
    """Stored STOPPED, stored RUNNING, DECLARED_IN_CODE and no stored state at all."""
    instance = schedules.instance
    schedules.stop("clear_sessions_schedule")  # a UI toggle off
    schedules.stop("cleanup_stuck_runs_schedule")
    schedules.start("cleanup_stuck_runs_schedule")  # toggled off, then on: stored RUNNING
    schedules.stop("send_periodic_emails_schedule")
    instance.reset_schedule(schedules.remote["send_periodic_emails_schedule"])  # "reset"


def _states(schedules: InstanceSchedules) -> dict[str, tuple[str, str | None]]:
    return {name: (s["status"], s["stored"]) for name, s in snapshot(schedules).items()}


def test_a_round_trip_restores_a_mixed_set_of_schedules_exactly(tmp_path):
    home = str(tmp_path)
    with dg.instance_for_test(temp_dir=home) as instance, schedules_on(instance) as schedules:
        _mixed_states(schedules)
        before = _states(schedules)
        assert before["clear_sessions_schedule"] == ("STOPPED", "STOPPED")
        assert before["cleanup_stuck_runs_schedule"] == ("RUNNING", "RUNNING")
        assert before["send_periodic_emails_schedule"] == ("RUNNING", "DECLARED_IN_CODE")
        assert before["purge_expired_outputs_schedule"] == ("RUNNING", None)

        lines = turn_on(schedules, REQUEST, NOW)
        assert lines[0].startswith("maintenance on: deploy 12: schema migration")
        assert "stopped clear_sessions_schedule" not in lines  # it was already stopped
        assert {status for status, _ in _states(schedules).values()} == {"STOPPED"}

        # Someone starts a schedule during maintenance; `on` again stops it and keeps the
        # first recorded states (it was RUNNING by default before maintenance, not stopped).
        schedules.start("purge_expired_outputs_schedule")
        again = turn_on(schedules, maintenance.MaintenanceRequest("other", "bob"), NOW)
        assert again[0].startswith("maintenance already on (first recorded states kept)")
        assert "stopped purge_expired_outputs_schedule" in again
        window = maintenance.current()
        assert window is not None and window.reason == REQUEST.reason
        assert window.prior_states["purge_expired_outputs_schedule"]["stored"] is None

    # A new instance object on the same storage (a daemon restart) sees maintenance as left.
    with dg.instance_for_test(temp_dir=home) as instance, schedules_on(instance) as schedules:
        assert {status for status, _ in _states(schedules).values()} == {"STOPPED"}
        assert turn_off(instance)[-1].startswith("maintenance off:")
        assert _states(schedules) == before
        assert maintenance.current() is None
        assert turn_off(instance) == ["maintenance is off: nothing to restore"]
        assert _states(schedules) == before


def test_the_sensor_shows_maintenance_and_restores_at_until(tmp_path):
    clock = [NOW]
    sensor = build_maintenance_sensor(clock=lambda: clock[0])
    home = str(tmp_path)
    with dg.instance_for_test(temp_dir=home) as instance, schedules_on(instance) as schedules:

        def tick() -> str:
            context = dg.build_sensor_context(
                instance=instance,
                resources={"django": DjangoResource(settings_module="config.settings.test")},
            )
            with context:
                return sensor.evaluate_tick(context).skip_message or ""

        assert tick() == "maintenance off"
        _mixed_states(schedules)
        before = _states(schedules)
        until = NOW + timedelta(hours=1)
        turn_on(schedules, maintenance.MaintenanceRequest("deploy", "alice", until), NOW)
        banner = tick()
        assert banner.startswith("MAINTENANCE ON: deploy (by alice since ")
        assert f"until {until.isoformat()}" in banner
        clock[0] = until + timedelta(seconds=1)
        ended = tick()
        assert ended.startswith(f"maintenance ended at {until.isoformat()} (deploy, by alice)")
        assert _states(schedules) == before
        assert maintenance.current() is None
        assert tick() == "maintenance off"


def test_a_sensor_without_a_migrated_database_says_so(monkeypatch):
    def broken():
        from django.db import DatabaseError

        raise DatabaseError("no such table: operations_maintenancemode")

    monkeypatch.setattr(maintenance, "current", broken)
    with dg.instance_for_test() as instance:
        text, alert = maintenance_sensor.end_if_due(instance, NOW)
    assert text.startswith("maintenance state unreadable (DatabaseError: no such table")
    assert alert is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--reason", "", "--author", "a"], "--reason is required"),
        (["--reason", "r", "--author", " "], "--author is required"),
        (["--reason", "r", "--author", "a", "--until", "2020-01-01T00:00:00Z"], "in the past"),
        (["--reason", "r", "--author", "a", "--until", "2030-01-01T00:00"], "has no timezone"),
        (["--reason", "r", "--author", "a", "--until", "friday"], "not an ISO 8601"),
    ],
)
def test_bad_input_is_refused_with_the_option_named(capsys, argv, message):
    assert main(["maintenance", "on", *argv]) == 2
    assert message in capsys.readouterr().err
    assert not MaintenanceMode.objects.exists()


def test_a_missing_reason_or_author_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["maintenance", "on", "--reason", "r"])
    assert exited.value.code == 2
    assert "--author" in capsys.readouterr().err
