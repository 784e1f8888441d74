"""Alert sensors against a real instance: real runs, a real local webhook server, locmem mail."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from tests.support.testapp.task_definitions import TEST_TASKS
from validibot.tasks.health import GRACE_ENV
from validibot.tasks.registry import (
    MaintenanceTask,
    register,
)
from validibot_ops import alerts, sensors
from validibot_ops.definitions import build_definitions
from validibot_ops.resources import DjangoResource

pytestmark = pytest.mark.django_db(transaction=True)

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
HOURLY = MaintenanceTask(
    id="test_hourly_noop", name="Test: hourly no-op", command="noop_task", cron="0 * * * *"
)


# -- a real webhook receiver -----------------------------------------------------------------


@dataclass
class Webhook:
    """A loopback HTTP server that records every POST and answers ``status`` after ``delay``."""

    url: str
    received: list[dict] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    status: int = 204
    delay: float = 0.0


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802  (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            hook.received.append(json.loads(body))
            hook.paths.append(self.path)
            hook.auth.append(self.headers.get("Authorization"))
            time.sleep(hook.delay)
            self.send_response(hook.status)
            self.end_headers()

        def log_message(self, *args):  # keep the test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/ops"
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def alert_env(monkeypatch, webhook, mailoutbox):
    """Both channels configured: the local webhook and locmem email."""
    monkeypatch.setenv(alerts.WEBHOOK_URL_ENV, webhook.url)
    monkeypatch.setenv(alerts.EMAILS_ENV, "ops@example.com, oncall@example.com")
    monkeypatch.setenv(alerts.UI_URL_ENV, "https://dagster.example.com/")
    monkeypatch.setenv(alerts.WEBHOOK_TIMEOUT_ENV, "0.5")
    return mailoutbox


@dataclass
class DeliverySpy:
    """Records what ``sensors.deliver`` (the real one) returned for each alert."""

    calls: list[tuple[alerts.Alert, list[alerts.Delivery]]] = field(default_factory=list)

    @property
    def alerts(self) -> list[alerts.Alert]:
        return [alert for alert, _ in self.calls]


@pytest.fixture
def delivery_spy(monkeypatch) -> DeliverySpy:
    spy = DeliverySpy()
    real = alerts.deliver

    def recording(alert, channels, log=None):
        results = real(alert, channels, log)
        spy.calls.append((alert, results))
        return results

    monkeypatch.setattr(sensors, "deliver", recording)
    return spy


@pytest.fixture
def sensor_defs():
    for task in (*TEST_TASKS, HOURLY):
        register(task)
    return build_definitions()


def _run(defs: dg.Definitions, job_name: str, instance) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def(job_name)
    return job.execute_in_process(instance=instance, run_config=QUIET, raise_on_error=False)


class Ticker:
    """Evaluates one sensor tick after another, carrying the cursor like the daemon does."""

    def __init__(self, sensor: dg.SensorDefinition, instance) -> None:
        self.sensor, self.instance, self.cursor = sensor, instance, None

    def tick(self) -> dg.SensorExecutionData:
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources={"django": DjangoResource(settings_module="config.settings.test")},
        )
        with context:
            data = self.sensor.evaluate_tick(context)
        self.cursor = data.cursor
        return data


# -- the dead man's switch -------------------------------------------------------------------


def test_every_sensor_is_generated_and_running_by_default(sensor_defs):
    by_name = {s.name: s for s in sensor_defs.sensors}
    assert set(by_name) == {
        sensors.DEAD_MANS_SWITCH_NAME,
        sensors.RUN_FAILURE_SENSOR_NAME,
        "validibot_failure_policy",  # validibot_ops/policies.py
    }
    for sensor in by_name.values():
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert by_name[sensors.RUN_FAILURE_SENSOR_NAME].minimum_interval_seconds <= 30


def test_a_late_task_alerts_once_across_ticks_and_a_success_clears_it(
    sensor_defs, alert_env, webhook, delivery_spy, monkeypatch
):
    """test_noop fires every minute; a grace of 0.05 intervals (3 s) makes its success late."""
    monkeypatch.setenv(GRACE_ENV, "0.05")
    noop = next(t for t in TEST_TASKS if t.id == "test_noop")
    with dg.instance_for_test() as instance:
        first = _run(sensor_defs, "test_noop", instance)
        assert first.success
        ticker = Ticker(sensors.build_dead_mans_switch_sensor([noop]), instance)
        assert ticker.tick().skip_message.startswith("watched 1, alerted 0")
        assert webhook.received == []

        time.sleep(3.5)  # the last success is now older than its grace window
        data = [ticker.tick() for _ in range(4)]
        assert [d.skip_message.split(", ")[1] for d in data] == ["alerted 1"] * 4
        assert len(webhook.received) == 1, "the alert must not repeat every tick"
        [late] = webhook.received
        assert late["task"] == "test_noop"
        assert late["status"] == "LATE"
        assert late["kind"] == "late"
        assert late["run_id"] is None
        assert "last success" in late["error"]
        assert (
            late["ui_url"] == "https://dagster.example.com/assets/validibot_maintenance/test_noop"
        )
        assert len(alert_env) == 1
        assert alert_env[0].to == ["ops@example.com", "oncall@example.com"]
        assert "test_noop" in alert_env[0].subject

        second = _run(sensor_defs, "test_noop", instance)
        assert second.success
        assert "cleared 1" in ticker.tick().skip_message
        ticker.tick()
        assert [h["status"] for h in webhook.received] == ["LATE", "RECOVERED"]
        recovered = webhook.received[1]
        assert recovered["run_id"] == second.run_id
        assert recovered["ui_url"] == f"https://dagster.example.com/runs/{second.run_id}"
        assert len(alert_env) == 2
        assert [a.kind for a in delivery_spy.alerts] == ["late", "recovered"]


def test_a_dry_run_success_does_not_count_as_a_success(sensor_defs, monkeypatch):
    monkeypatch.setenv(GRACE_ENV, "0.05")
    with dg.instance_for_test() as instance:
        real = _run(sensor_defs, "test_noop", instance)
        job = sensor_defs.resolve_job_def("test_noop")
        dry = job.execute_in_process(
            instance=instance,
            run_config={**QUIET, "ops": {"test_noop": {"config": {"dry_run": True}}}},
        )
        facts = sensors.run_facts(instance, "test_noop")
    assert dry.success
    assert facts.last_success_run_id == real.run_id
    assert facts.last_run_status == "SUCCESS"


def test_a_task_that_never_succeeds_alerts_once_its_grace_passes_after_the_watch_began(
    sensor_defs, alert_env, webhook
):
    now = {"t": datetime(2026, 5, 1, 12, 0, tzinfo=UTC)}
    sensor = sensors.build_dead_mans_switch_sensor([HOURLY], clock=lambda: now["t"])
    with dg.instance_for_test() as instance:
        ticker = Ticker(sensor, instance)
        ticker.tick()  # starts watching: no run yet is not late yet
        now["t"] += timedelta(hours=1, minutes=59)
        ticker.tick()
        assert webhook.received == []
        now["t"] += timedelta(minutes=2)
        ticker.tick()
        ticker.tick()
    assert [h["status"] for h in webhook.received] == ["LATE"]
    assert "no successful run yet" in webhook.received[0]["error"]


def test_disabled_tasks_are_not_watched(sensor_defs, alert_env, webhook):
    disabled = [t for t in TEST_TASKS if not t.enabled]
    now = {"t": datetime(2026, 5, 1, 12, 0, tzinfo=UTC)}
    sensor = sensors.build_dead_mans_switch_sensor(disabled, clock=lambda: now["t"])
    with dg.instance_for_test() as instance:
        ticker = Ticker(sensor, instance)
        assert ticker.tick().skip_message.startswith("watched 0")
        now["t"] += timedelta(days=3000)
        ticker.tick()
    assert webhook.received == []


def test_an_override_that_pauses_a_schedule_pauses_its_switch(monkeypatch, tmp_path):
    path = tmp_path / "overrides.json"
    path.write_text(json.dumps({"test_hourly_noop": {"enabled": False, "reason": "incident"}}))
    monkeypatch.setenv("VALIDIBOT_SCHEDULE_OVERRIDES", str(path))
    register(HOURLY)
    [watched] = sensors.effective_tasks([HOURLY])
    assert watched.enabled is False


# -- run failures ----------------------------------------------------------------------------


def test_each_failed_run_sends_one_alert_with_its_run_id(
    sensor_defs, alert_env, webhook, delivery_spy
):
    failure_sensor = sensor_defs.resolve_sensor_def(sensors.RUN_FAILURE_SENSOR_NAME)
    with dg.instance_for_test() as instance:
        ticker = Ticker(failure_sensor, instance)
        ticker.tick()  # the first tick only places the cursor
        ok = _run(sensor_defs, "test_noop", instance)
        failed = [_run(sensor_defs, "test_always_fail", instance) for _ in range(2)]
        assert ok.success and not any(r.success for r in failed)
        ticker.tick()
        ticker.tick()
        ticker.tick()
    assert [h["run_id"] for h in webhook.received] == [r.run_id for r in failed]
    for hook, result in zip(webhook.received, failed, strict=True):
        assert hook["task"] == "test_always_fail"
        assert hook["status"] == "FAILURE"
        assert hook["kind"] == "run_failed"
        assert "storage backend refused the request" in hook["error"]
        assert hook["ui_url"] == f"https://dagster.example.com/runs/{result.run_id}"
    assert len(alert_env) == 2
    assert failed[0].run_id in alert_env[0].body
    assert all(all(d.ok for d in results) for _, results in delivery_spy.calls)


def test_the_failure_sensor_can_be_invoked_on_one_failure_event(sensor_defs, webhook, monkeypatch):
    monkeypatch.setenv(alerts.WEBHOOK_URL_ENV, webhook.url)
    failure_sensor = sensor_defs.resolve_sensor_def(sensors.RUN_FAILURE_SENSOR_NAME)
    with dg.instance_for_test() as instance:
        result = _run(sensor_defs, "test_always_fail", instance)
        context = dg.build_run_status_sensor_context(
            sensor_name=sensors.RUN_FAILURE_SENSOR_NAME,
            dagster_event=result.get_run_failure_event(),
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            resources={"django": DjangoResource(settings_module="config.settings.test")},
        )
        failure_sensor(context.for_run_failure())
    [hook] = webhook.received
    assert hook["run_id"] == result.run_id


# -- delivery failures -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "delay", "expected"), [(500, 0.0, "HTTP 500"), (204, 2.0, "timed out")]
)
def test_a_failing_webhook_is_logged_and_the_sensor_still_returns(
    sensor_defs, alert_env, webhook, delivery_spy, status, delay, expected
):
    webhook.status, webhook.delay = status, delay
    failure_sensor = sensor_defs.resolve_sensor_def(sensors.RUN_FAILURE_SENSOR_NAME)
    with dg.instance_for_test() as instance:
        ticker = Ticker(failure_sensor, instance)
        ticker.tick()
        failed = _run(sensor_defs, "test_always_fail", instance)
        started = time.monotonic()
        ticker.tick()  # returns normally
        elapsed = time.monotonic() - started
    assert elapsed < 1.9, "the webhook timeout (0.5 s) must bound the tick"
    [(alert, results)] = delivery_spy.calls
    assert alert.run_id == failed.run_id
    by_channel = {d.channel: d for d in results}
    assert by_channel["log"].ok and by_channel["email"].ok
    assert not by_channel["webhook"].ok
    assert expected in by_channel["webhook"].detail
    assert len(alert_env) == 1, "email still goes out when the webhook fails"


class SpyLog:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, msg: str) -> None:
        self.lines.append(("info", msg))

    def warning(self, msg: str) -> None:
        self.lines.append(("warning", msg))

    def error(self, msg: str) -> None:
        self.lines.append(("error", msg))


def test_delivery_failures_never_log_webhook_credentials_or_query(webhook):
    webhook.status = 500
    port = webhook.url.split(":")[2].split("/")[0]
    secret_url = f"http://hookuser:hookpass@127.0.0.1:{port}/hooks/ops?token=s3cr3t-token"
    log = SpyLog()
    alert = alerts.Alert(kind="run_failed", task="t", status="FAILURE", summary="t failed")
    results = alerts.deliver(alert, [alerts.WebhookChannel(secret_url, timeout=2)], log)
    assert [r.ok for r in results] == [True, False]
    assert webhook.paths == ["/hooks/ops?token=s3cr3t-token"]  # it really was sent
    assert webhook.auth == ["Basic " + base64.b64encode(b"hookuser:hookpass").decode()]
    text = "\n".join(msg for _, msg in log.lines) + results[1].detail
    for secret in ("hookuser", "hookpass", "s3cr3t-token"):
        assert secret not in text
    assert f"127.0.0.1:{port}/hooks/ops" in text
    assert ("error", "ALERT FAILURE t: t failed") in log.lines


def test_an_unreachable_webhook_is_a_logged_failure():
    from tests.support.dagster_stack import free_port

    channel = alerts.WebhookChannel(f"http://127.0.0.1:{free_port()}/x", timeout=1)
    alert = alerts.Alert(kind="late", task="t", status="LATE", summary="t is late")
    log = SpyLog()
    [_, result] = alerts.deliver(alert, [channel], log)
    assert not result.ok and "Connection refused" in result.detail
    assert log.lines[-1][0] == "warning"


def test_an_email_error_is_scrubbed_of_the_mail_password(settings):
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.locmem.EmailBackend",
            "OPTIONS": {"password": "mail-pa55word"},
        }
    }

    def broken_prepare() -> None:
        raise ConnectionRefusedError("login as ops with mail-pa55word refused")

    channel = alerts.EmailChannel(("ops@example.com",), broken_prepare)
    alert = alerts.Alert(kind="late", task="t", status="LATE", summary="t is late")
    [_, result] = alerts.deliver(alert, [channel], SpyLog())
    assert not result.ok
    assert "mail-pa55word" not in result.detail and "***" in result.detail


def test_channels_follow_the_environment():
    assert alerts.build_channels(environ={}) == []
    channels = alerts.build_channels(
        environ={alerts.EMAILS_ENV: " a@x.org ,, b@x.org", alerts.WEBHOOK_URL_ENV: "http://h/"}
    )
    assert [c.name for c in channels] == ["email", "webhook"]
    assert channels[0].recipients == ("a@x.org", "b@x.org")
    assert channels[1].timeout == alerts.DEFAULT_WEBHOOK_TIMEOUT_SECONDS
