"""The trigger against the audit's reproductions (issue 15: D2, D6, D9, D10, paused tasks).

Each request is refused with a status and a message, and launches nothing: Dagster is a
loopback relay that counts every request reaching it (``dagster_spy``, answering 503). The
chunked-body cases go through a real WSGI server on loopback, since the Django test client
always sends a Content-Length.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import threading
from urllib.parse import urlsplit
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from tests.validibot.operations.conftest import SCOPED_TOKEN, TOKEN
from validibot.core.settings_check import check_environment
from validibot.operations.models import IdempotencyKey
from validibot.operations.trigger import MAX_JSON_DEPTH, json_depth
from validibot.tasks.overrides import OVERRIDES_ENV

pytestmark = pytest.mark.django_db

URL = "/api/v1/scheduled/clear_sessions/"


def post(client, url=URL, body="{}", token=TOKEN, **headers):
    return client.post(
        url,
        data=body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}", **headers},
    )


def chunked_post(base_url: str, chunks: list[bytes], token: str = TOKEN) -> tuple[int, dict]:
    """POST with ``Transfer-Encoding: chunked`` and no Content-Length, over a real socket.

    The first chunk goes with the headers; the answer is read before the rest is streamed,
    as a streaming client would (the server must answer without reading the body).
    """
    parts = urlsplit(base_url)
    head = (
        f"POST {URL} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        "Connection: close\r\n\r\n"
    )
    first, *rest = chunks
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(head.encode() + _chunk(first))
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = json.loads(response.read())
        for chunk in [*rest, b""]:
            try:
                sock.sendall(_chunk(chunk))
            except OSError:  # the server stopped reading: that is the point
                break
    return response.status, body


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


@pytest.fixture
def wsgi_server():
    """The project's WSGI application behind wsgiref on loopback (what runserver uses)."""
    from django.core.wsgi import get_wsgi_application

    server = make_server("127.0.0.1", 0, get_wsgi_application(), handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return


# -- D2: a body without Content-Length ---------------------------------------------------------
@pytest.mark.parametrize(
    "chunks",
    [[b'{"dry_run": ', b"true}"], [b'{"dry_run": true, "pad": "', b"x" * 10_240, b'"}']],
    ids=["dry-run body", "10 KB body"],
)
def test_a_chunked_body_is_411_and_launches_nothing(wsgi_server, dagster_spy, chunks):
    """D2: Django read an empty body, so ``{"dry_run": true}`` became a real run, and a 10 KB
    chunked body passed the 4 KiB limit. Now: 411, nothing read, nothing launched."""
    status, body = chunked_post(wsgi_server, chunks)
    assert status == 411
    assert body == {
        "error": "Content-Length required: chunked bodies are not accepted (send {} or no body)"
    }
    assert dagster_spy.requests == 0  # nothing reached Dagster


def test_a_declared_length_over_the_limit_is_still_413(client, dagster_spy):
    response = post(client, body='{"dry_run": false, "pad": "' + "x" * 5000 + '"}')
    assert response.status_code == 413
    assert dagster_spy.requests == 0  # nothing reached Dagster


# -- D10: deep nesting -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    ["[" * 2000 + "]" * 2000, '{"dry_run": ' + '{"a": ' * 9 + "1" + "}" * 10],
    ids=["2000 levels", "9 levels"],
)
def test_deep_nesting_under_the_size_limit_is_400_not_500(client, dagster_spy, body):
    """D10: a 2,000-level body under 4 KiB raised RecursionError (500)."""
    assert len(body.encode()) <= 4096
    response = post(client, body=body)
    assert response.status_code == 400
    assert response.json() == {"error": f"body nested deeper than {MAX_JSON_DEPTH} levels"}
    assert dagster_spy.requests == 0  # nothing reached Dagster


def test_json_depth_ignores_brackets_inside_strings():
    assert json_depth('{"a": "[[[[{{{{\\"[["}') == 1
    assert json_depth('{"a": [1, {"b": []}]}') == 4


# -- D6: control characters in ids ------------------------------------------------------------
def test_a_newline_in_the_task_id_never_forges_a_log_line(client, dagster_spy, caplog):
    """D6: an encoded newline in the task id, with a wrong token, wrote a forged log line."""
    caplog.set_level(logging.DEBUG)
    forged = "2026-12-01 12:00:00 INFO forged: admin login ok"
    response = post(client, url=f"/api/v1/scheduled/x%0A{forged}%0D/", token="wrong-token")
    assert response.status_code == 403
    assert response.json() == {"error": "invalid token"}
    messages = [record.getMessage() for record in caplog.records]
    assert any("invalid token" in m for m in messages)
    for message in messages:
        assert "\n" not in message and "\r" not in message, message
    assert any(f"x\\n{forged}\\r" in m for m in messages)  # escaped, still readable
    assert dagster_spy.requests == 0  # nothing reached Dagster


def test_an_authenticated_unknown_id_with_control_characters_is_404(client, dagster_spy, caplog):
    caplog.set_level(logging.DEBUG)
    response = post(client, url="/api/v1/scheduled/x%0Ay%1B[31m/")
    assert response.status_code == 404
    assert "\\n" in response.json()["error"]  # the repr, never the raw character
    assert all("\n" not in r.getMessage() and "\x1b" not in r.getMessage() for r in caplog.records)
    assert dagster_spy.requests == 0  # nothing reached Dagster


# -- D9 at the trigger: a token map without "=" -------------------------------------------------
def test_a_broken_token_map_answers_503_naming_the_variable(client, settings, dagster_spy, caplog):
    """D9: ``VALIDIBOT_TRIGGER_TASK_TOKENS=clear_sessions`` broke every manage.py command.
    Now settings load, and the trigger (which needs the map) refuses, naming the variable."""
    checked = check_environment({"VALIDIBOT_TRIGGER_TASK_TOKENS": "clear_sessions"})
    settings.VALIDIBOT_TRIGGER_TASK_TOKENS = checked.env("VALIDIBOT_TRIGGER_TASK_TOKENS")
    settings.VALIDIBOT_SETTINGS_ERRORS = checked.errors
    caplog.set_level(logging.ERROR)
    response = post(client)
    assert response.status_code == 503
    assert response.json() == {
        "error": "trigger misconfigured: invalid VALIDIBOT_TRIGGER_TASK_TOKENS "
        "(see manage.py doctor)"
    }
    assert "entry 1 has no '='" in caplog.text
    assert dagster_spy.requests == 0  # nothing reached Dagster


def test_spaces_around_a_scoped_token_are_trimmed(client, settings, dagster_spy):
    """D9: ``"a = tok"`` kept the spaces, so the token never matched."""
    checked = check_environment(
        {"VALIDIBOT_TRIGGER_TASK_TOKENS": f"clear_sessions = {SCOPED_TOKEN}"}
    )
    settings.VALIDIBOT_TRIGGER_TASK_TOKENS = checked.env("VALIDIBOT_TRIGGER_TASK_TOKENS")
    response = post(client, token=SCOPED_TOKEN)
    assert response.status_code == 503  # authenticated; the spy Dagster is down
    assert "Dagster webserver did not answer" in response.json()["error"]
    assert dagster_spy.requests > 0  # it did reach Dagster: the token matched


# -- the paused-task observation ----------------------------------------------------------------
@pytest.fixture
def overrides(tmp_path, monkeypatch):
    def write(text: str) -> None:
        path = tmp_path / "overrides.yaml"
        path.write_text(text)
        monkeypatch.setenv(OVERRIDES_ENV, str(path))

    return write


def test_a_paused_task_answers_409_with_the_reason_and_launches_nothing(
    client, dagster_spy, overrides
):
    """An incident pause stopped the Dagster schedule but not this trigger, so deployments
    scheduled by Cloud Scheduler kept running the task."""
    overrides(
        "clear_sessions: {enabled: false, reason: 'INC-77: sessions table locked', author: alice}\n"
    )
    response = post(client, **{"Idempotency-Key": "tick-1"})
    assert response.status_code == 409
    assert response.json() == {"error": "paused: INC-77: sessions table locked"}
    assert dagster_spy.requests == 0  # nothing reached Dagster
    assert not IdempotencyKey.objects.exists()
    other = post(client, url="/api/v1/scheduled/cleanup_idempotency_keys/")
    assert other.status_code == 503 and dagster_spy.requests > 0  # other tasks go on


def test_a_pause_without_a_reason_or_author_fails_closed_naming_the_entry(
    client, dagster_spy, overrides, caplog
):
    """Issue 19: an override must say why and who; one that does not is a broken file."""
    overrides("clear_sessions: {enabled: false}\n")
    response = post(client)
    assert response.status_code == 503
    assert "overrides file is invalid" in response.json()["error"]
    assert "task 'clear_sessions': reason is required" in caplog.text
    assert "author is required" in caplog.text
    assert dagster_spy.requests == 0  # nothing reached Dagster


def test_a_broken_overrides_file_fails_closed(client, dagster_spy, overrides, caplog):
    overrides("clear_sessions: {enabled: maybe-later}\n")
    response = post(client)
    assert response.status_code == 503
    assert "overrides file is invalid" in response.json()["error"]
    assert os.environ[OVERRIDES_ENV] in caplog.text  # the file is named in the log
    assert dagster_spy.requests == 0  # nothing reached Dagster


def test_a_bad_entry_for_another_task_does_not_stop_this_trigger(client, dagster_spy, overrides):
    """Issue 28: one bad entry breaks only its own task; before, every task's trigger 503'd."""
    overrides("clear_sessions: {enabled: maybe-later}\n")
    other = post(client, url="/api/v1/scheduled/cleanup_idempotency_keys/")
    assert "overrides file is invalid" not in other.json().get("error", "")
    assert dagster_spy.requests > 0  # it reached Dagster
    assert post(client).status_code == 503  # the entry's own task still fails closed
