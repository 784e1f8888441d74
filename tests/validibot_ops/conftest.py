"""Shared fixtures of the code-location tests: a real local webhook receiver, alert channels."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from validibot_ops import alerts

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
