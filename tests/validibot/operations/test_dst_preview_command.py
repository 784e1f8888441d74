"""`scheduled_task_status --preview` and doctor's clock_changes check, through call_command.

The preview is offline (registry and overrides file only), so no Dagster is needed here; its
agreement with Dagster's own ticks is tests/validibot_ops/test_dst_preview.py.
"""

from __future__ import annotations

import io
import json
import warnings
from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from validibot.tasks.overrides import OVERRIDES_ENV
from validibot.tasks.registry import ClockChangeWarning, MaintenanceTask, register

OTHER_CHECKS = ["database", "redis", "workers", "code_location", "daemon", "schedules", "overrides"]
OTHER_CHECKS += ["task_health", "maintenance"]


def _berlin(cron: str = "30 2 * * *", task_id: str = "berlin_nightly") -> MaintenanceTask:
    task = MaintenanceTask(
        id=task_id, name="Nightly", command="noop_task", cron=cron, timezone="Europe/Berlin"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClockChangeWarning)
        register(task)
    return task


def _status(*args: str) -> str:
    out = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClockChangeWarning)
        call_command("scheduled_task_status", "--preview", *args, stdout=out)
    return out.getvalue()


def test_the_json_preview_spans_two_clock_changes_with_markers_and_warnings():
    _berlin()
    [row] = json.loads(_status("--task", "berlin_nightly", "--json"))
    assert (row["cron"], row["cron_source"], row["timezone"]) == (
        "30 2 * * *",
        "registry",
        "Europe/Berlin",
    )
    changes = row["clock_changes"]
    assert sorted(c["kind"] for c in changes) == ["fall back", "spring forward"]
    assert datetime.fromisoformat(row["until"]) > max(
        datetime.fromisoformat(c["at_utc"]) for c in changes
    )
    markers = {t["marker"] for c in changes for t in c["ticks"]}
    assert markers == {None, "shifted", "once"}
    shifted = next(t for c in changes for t in c["ticks"] if t["marker"] == "shifted")
    assert shifted["named"].endswith("T02:30")
    assert datetime.fromisoformat(shifted["local"]).strftime("%H:%M %z") == "03:00 +0200"
    assert datetime.fromisoformat(shifted["utc"]).tzinfo == UTC
    assert len(row["next"]) == 3 and all(t["marker"] is None for t in row["next"])
    assert len(row["warnings"]) == 2
    assert all("berlin_nightly" in w and "30 2 * * *" in w for w in row["warnings"])


def test_the_table_says_what_happens_to_each_moved_tick():
    _berlin()
    text = _status("--task", "berlin_nightly")
    assert "02:30 does not exist (spring forward), runs at 03:00" in text
    assert "02:30 occurs twice (fall back), runs once, at the second" in text
    assert text.count("clock change") == 2


def test_days_bounds_the_horizon_and_bad_values_are_refused():
    _berlin()
    [row] = json.loads(_status("--task", "berlin_nightly", "--json", "--days", "1"))
    assert row["clock_changes"] == [] or len(row["clock_changes"]) <= 1
    span = datetime.fromisoformat(row["until"]) - datetime.fromisoformat(row["from"])
    assert span.days == 1
    for bad in ("0", "-3", "801"):
        with pytest.raises(CommandError, match=r"--days must be a whole number from 1 to 800"):
            _status("--days", bad)
    with pytest.raises(CommandError, match="--days only applies with --preview"):
        call_command("scheduled_task_status", "--days", "3", stdout=io.StringIO())


def test_an_override_cron_is_previewed_and_linted_naming_the_file(tmp_path, monkeypatch):
    _berlin(cron="0 4 * * *")
    path = tmp_path / "overrides.yaml"
    path.write_text("berlin_nightly:\n  cron: '30 2 * * *'\n  reason: INC-7\n  author: alice\n")
    monkeypatch.setenv(OVERRIDES_ENV, str(path))
    [row] = json.loads(_status("--task", "berlin_nightly", "--json"))
    assert row["cron"] == "30 2 * * *"
    assert str(path) in row["cron_source"]
    assert len(row["warnings"]) == 2

    out = io.StringIO()
    call_command("doctor", "--json", *[f"--skip={c}" for c in OTHER_CHECKS], stdout=out)
    rows = {r["check"]: r for r in json.loads(out.getvalue().splitlines()[-1])}
    assert rows["clock_changes"]["status"] == "warn"
    detail = rows["clock_changes"]["detail"]
    assert f"{path}: scheduled task 'berlin_nightly': cron '30 2 * * *'" in detail
    assert "'0 4 * * *'" not in detail  # the registry's own cron is fine


def test_doctor_is_ok_when_no_fixed_hour_cron_meets_a_change():
    out = io.StringIO()
    call_command("doctor", "--json", *[f"--skip={c}" for c in OTHER_CHECKS], stdout=out)
    rows = {r["check"]: r for r in json.loads(out.getvalue().splitlines()[-1])}
    assert rows["clock_changes"]["status"] == "ok", rows["clock_changes"]


def test_the_registry_warns_once_per_process_and_never_refuses():
    from validibot.tasks.registry import get_tasks

    _berlin(task_id="berlin_warned")
    with pytest.warns(ClockChangeWarning, match="berlin_warned") as caught:
        get_tasks()
    assert len([w for w in caught if "berlin_warned" in str(w.message)]) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error", ClockChangeWarning)
        get_tasks()  # already said: no second warning, and no error


@pytest.mark.subprocess
def test_the_preview_prints_no_raw_warning_lines_for_tasks_not_asked_for():
    """Issue 28 point 7: in a DST zone every task's ClockChangeWarning reached stderr raw."""
    import os
    import subprocess
    import sys

    from tests.support.dagster_stack import REPO_ROOT

    env = {**os.environ, "VALIDIBOT_SCHEDULE_TIMEZONE": "Europe/Berlin"}
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "scheduled_task_status",
            "--preview",
            "--task",
            "clear_sessions",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "clear_sessions  0 2 * * *  Europe/Berlin" in result.stdout
    assert "ClockChangeWarning" not in result.stderr, result.stderr
    assert "enforce_audit_retention" not in result.stdout + result.stderr
