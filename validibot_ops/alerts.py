"""Alert delivery: always the Dagster log, plus email and/or a webhook when the env asks for them.

Configuration (read at delivery time, so a changed env needs only a code-location reload):

- ``VALIDIBOT_ALERT_EMAILS``: comma-separated recipients; mail goes through Django's default
  mailer (``EMAIL_URL``), with Django set up only when an email is actually sent.
- ``VALIDIBOT_ALERT_WEBHOOK_URL``: receives a JSON POST (see :meth:`Alert.payload`).
- ``VALIDIBOT_ALERT_WEBHOOK_TIMEOUT_SECONDS``: webhook timeout (default 5).
- ``VALIDIBOT_DAGSTER_UI_URL``: base URL of the Dagster UI, for links in alerts.

A channel that fails is logged (without the webhook URL's credentials or query string, and
without any mail password) and never raises: a broken mail server must not stop the sensor
that noticed a broken schedule.
"""

from __future__ import annotations

import logging
import os
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import requests

EMAILS_ENV = "VALIDIBOT_ALERT_EMAILS"
WEBHOOK_URL_ENV = "VALIDIBOT_ALERT_WEBHOOK_URL"
WEBHOOK_TIMEOUT_ENV = "VALIDIBOT_ALERT_WEBHOOK_TIMEOUT_SECONDS"
UI_URL_ENV = "VALIDIBOT_DAGSTER_UI_URL"
DEFAULT_WEBHOOK_TIMEOUT_SECONDS = 5.0

RUN_FAILED = "run_failed"
LATE = "late"
RECOVERED = "recovered"
PAUSED = "paused"
PRIVACY_FAILING = "privacy_failing"


@dataclass(frozen=True)
class Alert:
    """One alert, whatever the channel.

    Attributes:
        kind: ``run_failed`` (a maintenance run failed), ``late`` (Dagster's freshness policy
            failed: no successful run within the grace window) or ``recovered`` (a late task
            succeeded);
            ``paused`` (the failure policy stopped a schedule) and ``privacy_failing`` (a
            privacy task keeps failing; ``status`` is its severity): validibot_ops/policies.py.
        task: the registry id.
        status: ``FAILURE``, ``LATE`` or ``RECOVERED``.
        summary: one line for humans (the email subject, the log line).
        run_id: the failed (or recovering) run, when there is one.
        error: the failure's message, or why the task is late.
        ui_url: a link into the Dagster UI (``None`` without ``VALIDIBOT_DAGSTER_UI_URL``).
    """

    kind: str
    task: str
    status: str
    summary: str
    run_id: str | None = None
    error: str | None = None
    ui_url: str | None = None

    def payload(self) -> dict[str, Any]:
        """The webhook's JSON body: task, run_id, status, error, ui_url, kind, summary."""
        return asdict(self)


class AlertLog(Protocol):
    """What delivery needs from a logger (a Dagster sensor's ``context.log`` fits)."""

    def info(self, msg: str) -> Any: ...
    def warning(self, msg: str) -> Any: ...
    def error(self, msg: str) -> Any: ...


class AlertChannel(Protocol):
    """A delivery target; ``send`` raises on failure, :func:`deliver` catches it."""

    name: str

    def send(self, alert: Alert) -> None: ...


def redact_url(url: str) -> str:
    """``scheme://host[:port]/path``: no user, password, query string or fragment.

    Stronger than kombu's ``maybe_sanitize_url`` (used for broker URLs), which masks only the
    password: webhook URLs (Slack, Teams) carry their secret in the path or query string.
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


@dataclass
class WebhookChannel:
    """POSTs :meth:`Alert.payload` as JSON; any non-2xx answer or timeout is a failure."""

    url: str
    timeout: float = DEFAULT_WEBHOOK_TIMEOUT_SECONDS
    name: str = field(init=False, default="webhook")

    def __str__(self) -> str:
        return f"webhook {redact_url(self.url)}"

    def secrets(self) -> list[str]:
        parts = urllib.parse.urlsplit(self.url)
        return [self.url, parts.query, parts.password or "", parts.username or ""]

    def send(self, alert: Alert) -> None:
        if urllib.parse.urlsplit(self.url).scheme not in {"http", "https"}:
            raise ValueError("the webhook URL must be http(s)")
        # requests moves ``user:password@`` in the URL to a Basic auth header by itself.
        response = requests.post(
            self.url,
            json=alert.payload(),
            headers={"User-Agent": "validibot-alerts"},
            timeout=self.timeout,
        )
        response.raise_for_status()


@dataclass
class EmailChannel:
    """Sends through Django's default mailer; ``prepare`` sets Django up on first use."""

    recipients: tuple[str, ...]
    prepare: Callable[[], None] = lambda: None
    name: str = field(init=False, default="email")

    def __str__(self) -> str:
        return f"email to {len(self.recipients)} recipient(s)"

    def secrets(self) -> list[str]:
        try:
            from django.conf import settings

            options = settings.MAILERS.get("default", {}).get("OPTIONS", {})
            return [str(options.get("password") or "")]
        except Exception:  # noqa: BLE001  (settings not configured: nothing to scrub)
            return []

    def send(self, alert: Alert) -> None:
        self.prepare()
        from django.core.mail import EmailMessage

        EmailMessage(
            subject=f"[validibot] {alert.summary}"[:200],
            body=_email_body(alert),
            to=list(self.recipients),
        ).send()


def _email_body(alert: Alert) -> str:
    lines = [alert.summary, ""]
    lines += [f"{key}: {value}" for key, value in alert.payload().items() if value]
    return "\n".join(lines) + "\n"


def webhook_timeout(environ: Mapping[str, str]) -> float:
    raw = environ.get(WEBHOOK_TIMEOUT_ENV, "").strip()
    try:
        return float(raw) if raw and float(raw) > 0 else DEFAULT_WEBHOOK_TIMEOUT_SECONDS
    except ValueError:
        return DEFAULT_WEBHOOK_TIMEOUT_SECONDS


def build_channels(
    prepare_django: Callable[[], None] = lambda: None,
    environ: Mapping[str, str] | None = None,
) -> list[AlertChannel]:
    """The channels the environment configures, besides the log (which is always on).

    Args:
        prepare_django: called before the first email is sent (e.g. initialising the
            ``DjangoResource``), so nothing sets Django up unless mail is configured.
        environ: the environment to read (``os.environ`` by default).
    """
    environ = os.environ if environ is None else environ
    channels: list[AlertChannel] = []
    recipients = tuple(a.strip() for a in environ.get(EMAILS_ENV, "").split(",") if a.strip())
    if recipients:
        channels.append(EmailChannel(recipients, prepare_django))
    url = environ.get(WEBHOOK_URL_ENV, "").strip()
    if url:
        channels.append(WebhookChannel(url, webhook_timeout(environ)))
    return channels


def ui_link(path: str, environ: Mapping[str, str] | None = None) -> str | None:
    """``$VALIDIBOT_DAGSTER_UI_URL`` joined with ``path``, or ``None`` when it is unset."""
    base = (os.environ if environ is None else environ).get(UI_URL_ENV, "").strip()
    return f"{base.rstrip('/')}/{path.lstrip('/')}" if base else None


@dataclass(frozen=True)
class Delivery:
    """What happened to one alert on one channel."""

    channel: str
    ok: bool
    detail: str = ""


def deliver(
    alert: Alert, channels: Sequence[AlertChannel], log: AlertLog | None = None
) -> list[Delivery]:
    """Log the alert, then send it on every channel; never raises.

    Returns one :class:`Delivery` per channel, the log first. A failing channel is logged as
    a warning with the exception type and a message scrubbed of the channel's secrets.
    """
    log = log or logging.getLogger(__name__)
    line = f"ALERT {alert.status} {alert.task}: {alert.summary}"
    (
        log.info
        if alert.kind == RECOVERED
        else log.warning
        if alert.status == "WARNING"
        else log.error
    )(line)
    results = [Delivery("log", True)]
    for channel in channels:
        try:
            channel.send(alert)
        except Exception as exc:  # noqa: BLE001  (any channel error is reported, never raised)
            detail = _describe_error(exc, channel)
            log.warning(f"alert for {alert.task} not delivered via {channel}: {detail}")
            results.append(Delivery(channel.name, False, detail))
        else:
            results.append(Delivery(channel.name, True))
    return results


def _describe_error(exc: BaseException, channel: AlertChannel) -> str:
    secrets: list[str] = getattr(channel, "secrets", list)()
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        text = f"HTTP {exc.response.status_code} {exc.response.reason}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return _scrub(text, secrets)[:500]
