"""Issue 19 item 4: an expiring override, on the schedules and through the expiry sensor.

The sensor runs against a real instance with the real alert delivery (log channel); its clock
is the one seam moved by hand, and its reloader is a spy: the reload it asks for is the
webserver's ``reloadRepositoryLocation``, exercised in tests/integration/surfaces.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from validibot.tasks.overrides import OVERRIDES_ENV
from validibot.tasks.registry import BACKEND_DAGSTER, get_task, get_tasks_for_backend
from validibot.tasks.sync_plan import RUNNING, ObservedSchedule, plan_schedules
from validibot.tasks.vocabulary import OVERRIDE_TAG
from validibot_ops import override_expiry
from validibot_ops.definitions import build_definitions
from validibot_ops.override_expiry import LOCATION_NAME, build_override_expiry_sensor
from validibot_ops.resources import DjangoResource

pytestmark = pytest.mark.django_db(transaction=True)


def _overrides(tmp_path, monkeypatch, expires_at: datetime, written_at: datetime):
    path = tmp_path / "overrides.json"
    entry = {
        "cron": "45 5 * * *",
        "reason": "INC-42: purge slow",
        "author": "alice",
        "expires_at": expires_at.isoformat(),
    }
    path.write_text(json.dumps({"purge_expired_submissions": entry}))
    os.utime(path, (written_at.timestamp(), written_at.timestamp()))
    monkeypatch.setenv(OVERRIDES_ENV, str(path))
    return path


def _observed(defs: dg.Definitions) -> dict[str, ObservedSchedule]:
    """The schedules as a freshly loaded code location declares them (nothing toggled)."""
    return {
        s.name: ObservedSchedule(
            s.name,
            RUNNING,
            s.default_status.value,
            str(s.cron_schedule),
            s.tags.get(OVERRIDE_TAG, ""),
        )
        for s in defs.schedules
        if s.default_status == dg.DefaultScheduleStatus.RUNNING
    }


def test_an_override_in_force_shows_reason_author_and_expiry(tmp_path, monkeypatch):
    now = datetime.now(UTC)
    _overrides(tmp_path, monkeypatch, now + timedelta(hours=1), now - timedelta(hours=1))
    schedule = build_definitions().resolve_schedule_def("purge_expired_submissions_schedule")
    assert schedule.cron_schedule == "45 5 * * *"
    for text in ("INC-42: purge slow", "by alice", "expires 20"):
        assert text in schedule.description
        assert text in schedule.tags[OVERRIDE_TAG]


def test_an_expired_override_stops_applying_at_the_next_load_and_drift_clears(
    tmp_path, monkeypatch
):
    now = datetime.now(UTC)
    _overrides(tmp_path, monkeypatch, now - timedelta(minutes=1), now - timedelta(hours=1))
    defs = build_definitions()
    schedule = defs.resolve_schedule_def("purge_expired_submissions_schedule")
    assert schedule.cron_schedule == get_task("purge_expired_submissions").cron
    assert OVERRIDE_TAG not in schedule.tags
    plan = plan_schedules(get_tasks_for_backend(BACKEND_DAGSTER), _observed(defs), None)
    assert not plan.drifted, plan.render()


class Ticker:
    """Evaluates ticks one after another, carrying the cursor like the daemon does."""

    def __init__(self, sensor: dg.SensorDefinition, instance, cursor: str | None = None) -> None:
        self.sensor, self.instance, self.cursor = sensor, instance, cursor

    def tick(self) -> str:
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources={"django": DjangoResource(settings_module="config.settings.test")},
        )
        with context:
            data = self.sensor.evaluate_tick(context)
        self.cursor = data.cursor
        return data.skip_message or ""


def test_the_sensor_alerts_once_then_reloads_the_location_once(tmp_path, monkeypatch):
    real_now = datetime.now(UTC)
    expires = real_now + timedelta(hours=1)
    _overrides(tmp_path, monkeypatch, expires, real_now - timedelta(hours=1))
    clock = [real_now]
    reloads: list[str] = []
    sent: list[override_expiry.Alert] = []
    real_deliver = override_expiry.deliver
    monkeypatch.setattr(
        override_expiry,
        "deliver",
        lambda alert, channels, log=None: sent.append(alert) or real_deliver(alert, [], log),
    )
    tasks = get_tasks_for_backend(BACKEND_DAGSTER)
    sensor = build_override_expiry_sensor(tasks, clock=lambda: clock[0], reload=reloads.append)
    with dg.instance_for_test() as instance:
        ticker = Ticker(sensor, instance)
        assert "1 in force" in ticker.tick()
        assert not sent and not reloads

        clock[0] = expires + timedelta(seconds=1)
        text = ticker.tick()
        assert [a.task for a in sent] == ["purge_expired_submissions"]
        assert "INC-42: purge slow" in sent[0].summary and "by alice" in sent[0].summary
        assert sent[0].kind == override_expiry.OVERRIDE_EXPIRED
        assert not reloads, "the reload waits for a tick after the alert is in the cursor"
        assert "alerted: purge_expired_submissions" in text

        clock[0] += timedelta(seconds=60)
        assert "reload requested" in ticker.tick()
        assert reloads == [LOCATION_NAME]

        clock[0] += timedelta(seconds=60)
        assert "reload pending" in ticker.tick()
        assert len(sent) == 1 and len(reloads) == 1

        # The reloaded location no longer applies the override; its sensor, with the
        # daemon's cursor, neither alerts again nor reloads again.
        reloaded = build_override_expiry_sensor(
            tasks, clock=lambda: clock[0], reload=reloads.append
        )
        assert "0 in force" in Ticker(reloaded, instance, ticker.cursor).tick()
        assert len(sent) == 1 and len(reloads) == 1


def test_a_failed_reload_is_named_and_retried_later(tmp_path, monkeypatch):
    real_now = datetime.now(UTC)
    expires = real_now + timedelta(minutes=5)
    _overrides(tmp_path, monkeypatch, expires, real_now - timedelta(hours=1))
    clock = [real_now]
    attempts: list[str] = []

    def failing(location: str) -> None:
        attempts.append(location)
        raise RuntimeError("VALIDIBOT_DAGSTER_URL is not set: reload the code location by hand")

    sensor = build_override_expiry_sensor(
        get_tasks_for_backend(BACKEND_DAGSTER), clock=lambda: clock[0], reload=failing
    )
    with dg.instance_for_test() as instance:
        ticker = Ticker(sensor, instance)
        clock[0] = expires + timedelta(seconds=1)
        ticker.tick()  # the alert
        clock[0] += timedelta(seconds=60)
        assert "reload the code location by hand" in ticker.tick()
        clock[0] += timedelta(seconds=60)
        ticker.tick()
        assert len(attempts) == 1
        clock[0] += timedelta(seconds=override_expiry.RELOAD_RETRY_SECONDS)
        ticker.tick()
        assert len(attempts) == 2
