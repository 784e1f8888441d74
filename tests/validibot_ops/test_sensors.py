"""Alert sensors against a real instance: real runs, a real local webhook server, locmem mail.

The freshness alerts (late / recovered) are tested in test_freshness.py."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field

import dagster as dg
import pytest

from tests.support.testapp.task_definitions import TEST_TASKS
from validibot.tasks.registry import (
    MaintenanceTask,
    register,
)
from validibot_ops import alerts, sensors
from validibot_ops.definitions import build_definitions
from validibot_ops.freshness import FRESHNESS_ALERT_SENSOR_NAME
from validibot_ops.resources import DjangoResource

pytestmark = pytest.mark.django_db(transaction=True)

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
HOURLY = MaintenanceTask(
    id="test_hourly_noop", name="Test: hourly no-op", command="noop_task", cron="0 * * * *"
)


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


def test_both_sensors_are_generated_and_running_by_default(sensor_defs):
    by_name = {s.name: s for s in sensor_defs.sensors}
    assert set(by_name) >= {
        FRESHNESS_ALERT_SENSOR_NAME,
        sensors.RUN_FAILURE_SENSOR_NAME,
        "validibot_override_expiry",
        "validibot_maintenance",
        "validibot_history_files",  # the sweep of deleted runs' files: tested with the prune
        "validibot_failure_policy",  # validibot_ops/policies.py
    }  # the outcome checks' alert sensor: test_checks.py
    for sensor in by_name.values():
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert by_name[sensors.RUN_FAILURE_SENSOR_NAME].minimum_interval_seconds <= 30


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
