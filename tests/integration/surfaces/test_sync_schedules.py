"""sync_schedules against a real webserver and instance: UI-style toggles, --check, overrides.

Every command here is run the way an operator runs it (a subprocess in the stack's
environment), so docs/operations.md can copy them.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.services, pytest.mark.timeout(300)]

TOGGLED = "clear_sessions_schedule"
"""Daily at 02:00: no daemon runs here anyway, so toggling it fires nothing."""


def test_a_fresh_instance_is_in_sync(surfaces):
    result = surfaces.sync("--check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 to start, 0 to stop, 0 other drift" in result.stdout


def test_a_ui_toggle_is_drift_that_check_names_and_sync_undoes(surfaces):
    client = surfaces.client
    client.stop_schedule(TOGGLED)  # the same mutation the UI's toggle sends

    check = surfaces.sync("--check")
    assert check.returncode == 1
    assert f"~ {TOGGLED}: STOPPED -> RUNNING (start; registry enabled=True)" in check.stdout
    assert "1 to start" in check.stdout

    dry = surfaces.sync("--dry-run")
    assert dry.returncode == 0
    assert TOGGLED in dry.stdout
    assert client.get_schedule(TOGGLED).status == "STOPPED"  # a dry run changes nothing

    applied = surfaces.sync()
    assert applied.returncode == 0, applied.stderr
    assert f"started {TOGGLED}" in applied.stdout
    assert client.get_schedule(TOGGLED).status == "RUNNING"

    again = surfaces.sync("--check")
    assert again.returncode == 0, again.stdout


def test_a_disabled_task_started_by_hand_is_stopped_again(surfaces):
    client = surfaces.client
    client.start_schedule("test_flaky_schedule")  # registry: enabled=False
    check = surfaces.sync("--check")
    assert check.returncode == 1
    assert (
        "~ test_flaky_schedule: RUNNING -> STOPPED (stop; registry enabled=False)" in check.stdout
    )
    assert surfaces.sync().returncode == 0
    assert client.get_schedule("test_flaky_schedule").status == "STOPPED"


def test_instance_direct_path_agrees_and_repairs(surfaces):
    """`validibot-ops sync-schedules` reads the same states from the instance, no webserver."""
    client = surfaces.client
    client.stop_schedule(TOGGLED)

    check = surfaces.ops("sync-schedules", "--check")
    assert check.returncode == 1, check.stdout + check.stderr
    assert f"~ {TOGGLED}: STOPPED -> RUNNING" in check.stdout

    dry = surfaces.ops("sync-schedules", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert client.get_schedule(TOGGLED).status == "STOPPED"

    applied = surfaces.ops("sync-schedules")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert f"started {TOGGLED}" in applied.stdout
    assert client.get_schedule(TOGGLED).status == "RUNNING"  # the webserver sees it
    assert surfaces.ops("sync-schedules", "--check").returncode == 0
    assert surfaces.sync("--check").returncode == 0


def test_an_incident_override_is_drift_until_removed(surfaces):
    """Write the overrides file, reload the code location (as an operator would), check."""
    client = surfaces.client
    location = client.get_schedule("purge_expired_submissions_schedule").location.location
    surfaces.overrides.write_text(
        "purge_expired_submissions:\n"
        "  cron: '30 4 * * *'\n"
        "  reason: incident 42\n"
        "  author: alice\n"
        "clear_sessions:\n"
        "  enabled: false\n"
        "  reason: incident 43\n"
        "  author: bob\n",
        encoding="utf-8",
    )
    try:
        client.reload_location(location)
        purge = client.get_schedule("purge_expired_submissions_schedule")
        assert purge.cron == "30 4 * * *"
        assert purge.override == "cron='30 4 * * *' (incident 42; by alice)"  # the schedule says so

        check = surfaces.sync("--check")
        assert check.returncode == 1
        assert "! purge_expired_submissions_schedule: incident override active" in check.stdout
        assert "incident 42" in check.stdout
        assert "! clear_sessions_schedule: incident override active" in check.stdout

        # Without the file in its own environment the command still sees the override
        # through the schedule's validibot/override tag.
        blind = surfaces.sync("--check", env={"VALIDIBOT_SCHEDULE_OVERRIDES": ""})
        assert blind.returncode == 1
        assert "! purge_expired_submissions_schedule: incident override active" in blind.stdout

        # Sync keeps the incident pause (it does not undo an override) and warns.
        applied = surfaces.sync()
        assert applied.returncode == 0
        assert "incident override active" in applied.stderr
        assert client.get_schedule("clear_sessions_schedule").status == "STOPPED"
    finally:
        surfaces.overrides.write_text("", encoding="utf-8")
        client.reload_location(location)

    # The override is gone; the pause it caused is now plain drift, and sync ends it.
    assert client.get_schedule("purge_expired_submissions_schedule").cron == "0 * * * *"
    after = surfaces.sync("--check")
    assert after.returncode == 1
    assert "~ clear_sessions_schedule: STOPPED -> RUNNING" in after.stdout
    assert "incident override" not in after.stdout
    assert surfaces.sync().returncode == 0
    final = surfaces.sync("--check")
    assert final.returncode == 0, final.stdout


def test_webserver_down_is_exit_2_with_a_clear_message(surfaces, dead_url):
    result = surfaces.manage("sync_schedules", "--url", dead_url, "--check")
    assert result.returncode == 2
    assert "unreachable" in result.stderr
