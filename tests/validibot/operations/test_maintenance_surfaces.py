"""Issue 19: maintenance mode and accountable overrides on the Django side.

The trigger talks to ``dagster_spy`` (a loopback Dagster that answers 503 and counts every
request): a refused request must not reach it. ``doctor`` runs with its remote checks skipped.
"""

from __future__ import annotations

import io
import json
import os
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from tests.support.dagster_stack import free_port
from tests.validibot.operations.conftest import TOKEN
from validibot.operations.models import IdempotencyKey, MaintenanceMode
from validibot.tasks.overrides import OVERRIDES_ENV

pytestmark = pytest.mark.django_db

URL = "/api/v1/scheduled/clear_sessions/"
REMOTE = ["settings", "database", "redis", "workers", "code_location", "daemon", "schedules"]
REMOTE += ["task_health"]  # reads Dagster over GraphQL too


def post(client):
    return client.post(
        URL,
        data="{}",
        content_type="application/json",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )


def _maintenance(until=None) -> MaintenanceMode:
    return MaintenanceMode.objects.create(
        pk=1, reason="deploy 12", author="alice", until=until, prior_states={"a_schedule": {}}
    )


def test_the_trigger_answers_409_naming_maintenance_and_launches_nothing(client, dagster_spy):
    _maintenance()
    response = post(client)
    assert response.status_code == 409
    assert response.json() == {"error": "maintenance: deploy 12"}
    assert dagster_spy.requests == 0
    assert not IdempotencyKey.objects.exists()


def test_past_its_until_maintenance_no_longer_stops_the_trigger(client, dagster_spy):
    _maintenance(until=timezone.now() - timedelta(seconds=1))
    assert post(client).status_code == 503  # went on to the (spy, down) Dagster
    assert dagster_spy.requests > 0


def _doctor() -> dict[str, dict[str, str]]:
    out = io.StringIO()
    # A dead webserver: the overrides row falls back to this environment's file, and no
    # webserver another engineer runs on the default port can answer instead.
    dead = f"--url=http://127.0.0.1:{free_port()}"
    call_command("doctor", "--json", dead, *[f"--skip={name}" for name in REMOTE], stdout=out)
    return {row["check"]: row for row in json.loads(out.getvalue())}


def test_doctor_shows_maintenance_with_reason_author_and_until():
    assert _doctor()["maintenance"]["status"] == "ok"
    until = timezone.now() + timedelta(hours=2)
    _maintenance(until=until)
    row = _doctor()["maintenance"]
    assert row["status"] == "warn"
    assert "ON: deploy 12 (by alice since " in row["detail"]
    assert f"until {until.isoformat()}" in row["detail"]


def test_doctor_shows_each_override_with_reason_author_and_expiry(tmp_path, monkeypatch):
    path = tmp_path / "overrides.yaml"
    path.write_text(
        "clear_sessions: {enabled: false, reason: INC-5, author: bob, "
        "expires_at: '2030-01-01T00:00:00Z'}\n"
    )
    monkeypatch.setenv(OVERRIDES_ENV, str(path))
    row = _doctor()["overrides"]
    assert row["status"] == "warn"
    assert (
        "clear_sessions: enabled=False (INC-5; by bob; expires 2030-01-01T00:00:00+00:00)"
        in (row["detail"])
    )


def test_doctor_names_an_expired_entry_to_remove(tmp_path, monkeypatch):
    path = tmp_path / "overrides.yaml"
    path.write_text(
        "clear_sessions: {enabled: false, reason: INC-5, author: bob, "
        "expires_at: '2026-01-01T00:00:00Z'}\n"
    )
    written = timezone.now().replace(year=2025).timestamp()
    os.utime(path, (written, written))
    monkeypatch.setenv(OVERRIDES_ENV, str(path))
    row = _doctor()["overrides"]
    assert row["status"] == "warn"
    assert "expired, remove: clear_sessions" in row["detail"]
    assert "in force: clear_sessions" not in row["detail"]


def test_a_sync_is_refused_while_maintenance_is_on(dead_url):
    """It would restart every schedule maintenance paused; refused before any request."""
    from django.core.management.base import CommandError

    _maintenance()
    with pytest.raises(CommandError, match="maintenance: deploy 12 .* is on: a sync would") as e:
        call_command("sync_schedules", "--url", dead_url, stdout=io.StringIO())
    assert e.value.returncode == 2


def test_doctor_does_not_advise_a_sync_that_maintenance_mode_refuses():
    """Issue 28 point 7: drift during maintenance pointed at sync_schedules, which refuses."""
    from validibot.operations.management.commands.doctor import drift_advice

    assert "sync_schedules" in drift_advice()
    _maintenance()
    advice = drift_advice()
    assert "`validibot-ops maintenance off`" in advice and "run `manage.py sync_schedules`" not in (
        advice
    )


def test_no_surface_doubles_the_maintenance_prefix():
    from validibot.operations import maintenance

    window = _maintenance()
    assert maintenance.describe(window).count("maintenance:") == 1
    detail = _doctor()["maintenance"]["detail"]
    assert "maintenance:" not in detail and detail.startswith("ON: deploy 12")
