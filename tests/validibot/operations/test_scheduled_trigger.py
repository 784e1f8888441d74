"""POST /api/v1/scheduled/<id>/: authentication, validation and errors (no webserver needed)."""

from __future__ import annotations

import logging

import pytest

from tests.validibot.operations.conftest import SCOPED_TOKEN, TOKEN
from validibot.operations.dagster_client import DagsterClient
from validibot.operations.models import IdempotencyKey

pytestmark = pytest.mark.django_db

URL = "/api/v1/scheduled/clear_sessions/"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post(client, url=URL, body="{}", **headers):
    return client.post(url, data=body, content_type="application/json", headers=headers)


def test_no_token_configured_means_disabled_never_open(client, settings):
    settings.VALIDIBOT_TRIGGER_TOKEN = ""
    settings.VALIDIBOT_TRIGGER_TASK_TOKENS = {}
    response = post(client, **bearer("anything"))
    assert response.status_code == 503
    assert response.json() == {"error": "trigger disabled: no token configured"}
    assert post(client).status_code == 503


@pytest.mark.subprocess
def test_production_settings_have_no_token_default():
    """Production with the token unset loads (the trigger is then disabled): no fallback."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("VALIDIBOT_TRIGGER")}
    env.update({"DJANGO_SECRET_KEY": "x", "DATABASE_URL": "sqlite:///:memory:"})
    code = (
        "import config.settings.production as p;"
        "print(repr((p.VALIDIBOT_TRIGGER_TOKEN, p.VALIDIBOT_TRIGGER_TASK_TOKENS)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "('', {})"


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_other_methods_are_405(client, tokens, method):
    response = getattr(client, method)(URL, headers=bearer(TOKEN))
    assert response.status_code == 405
    assert response["Allow"] == "POST"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", f"Basic {TOKEN}", TOKEN])
def test_missing_credentials_are_401(client, tokens, header):
    headers = {} if header is None else {"Authorization": header}
    response = post(client, **headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_wrong_token_is_403(client, tokens):
    response = post(client, **bearer("not-the-token"))
    assert response.status_code == 403
    assert response.json() == {"error": "invalid token"}


def test_a_token_scoped_to_another_task_is_403_wrong_audience(client, tokens):
    response = post(
        client, url="/api/v1/scheduled/purge_expired_submissions/", **bearer(SCOPED_TOKEN)
    )
    assert response.status_code == 403
    assert "wrong audience" in response.json()["error"]


def test_unknown_task_is_404_for_an_authenticated_caller(client, tokens):
    response = post(client, url="/api/v1/scheduled/no_such_task/", **bearer(TOKEN))
    assert response.status_code == 404
    assert "no_such_task" in response.json()["error"]


def test_unknown_task_reveals_nothing_without_credentials(client, tokens):
    assert post(client, url="/api/v1/scheduled/no_such_task/").status_code == 401


def test_a_large_body_is_413(client, tokens):
    response = post(client, body='{"dry_run": false, "pad": "' + "x" * 5000 + '"}', **bearer(TOKEN))
    assert response.status_code == 413


@pytest.mark.parametrize(
    "body", ["not json", "[1, 2]", '{"dry_run": "yes"}', '{"extra_args": ["--all"]}']
)
def test_a_bad_body_is_400(client, tokens, body):
    response = post(client, body=body, **bearer(TOKEN))
    assert response.status_code == 400
    assert response.json()["error"]


def test_a_bad_idempotency_key_is_400(client, tokens):
    response = post(client, **bearer(TOKEN), **{"Idempotency-Key": "k" * 201})
    assert response.status_code == 400


def test_webserver_down_is_503_and_keeps_the_key_for_the_retry_to_resolve(client, tokens):
    """The launch may have reached Dagster (issue 15, D5), so the claim is kept, marked
    "outcome unknown" with the run tag it named in advance; the retry looks that run up."""
    response = post(client, **bearer(TOKEN), **{"Idempotency-Key": "retry-me"})
    assert response.status_code == 503
    assert "Dagster webserver did not answer" in response.json()["error"]
    assert "retry later with the same Idempotency-Key" in response.json()["error"]
    assert response["Retry-After"]
    claim = IdempotencyKey.objects.get()
    assert claim.response_status is None
    assert claim.response_body["outcome"] == "unknown" and claim.response_body["tag"]


def test_an_internal_error_is_500_without_the_exception_text(client, tokens, monkeypatch, caplog):
    def explode(self, *args, **kwargs):
        raise RuntimeError("secret internal detail: db password=hunter2")

    monkeypatch.setattr(DagsterClient, "launch_task", explode)
    with caplog.at_level(logging.ERROR, logger="validibot.operations.trigger"):
        response = post(client, **bearer(TOKEN))
    assert response.status_code == 500
    assert response.json() == {"error": "internal error"}
    assert b"hunter2" not in response.content
    assert "hunter2" in caplog.text  # the logs get the details, the caller does not


def test_tokens_never_reach_the_logs(client, tokens, caplog):
    caplog.set_level(logging.DEBUG)
    post(client, **bearer(TOKEN))  # webserver down: 503, logged
    post(client, **bearer("a-wrong-token-value-123"))
    post(client, url="/api/v1/scheduled/purge_expired_submissions/", **bearer(SCOPED_TOKEN))
    post(client, url="/api/v1/scheduled/no_such_task/", **bearer(TOKEN))
    assert caplog.records  # the rejections and the outage were logged...
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    for secret in (TOKEN, SCOPED_TOKEN, "a-wrong-token-value-123"):
        assert secret not in text  # ...without any token
