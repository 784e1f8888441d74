"""The HTTP trigger against a real webserver and daemon: the launched run executes."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from tests.validibot.operations.conftest import SCOPED_TOKEN, TOKEN
from validibot.operations.models import IdempotencyKey

pytestmark = [pytest.mark.services, pytest.mark.django_db, pytest.mark.timeout(600)]


def trigger(client, task="clear_sessions", body="{}", token=TOKEN, **headers):
    return client.post(
        f"/api/v1/scheduled/{task}/",
        data=body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}", **headers},
    )


def test_202_and_the_run_executes_with_the_http_tag(client, live, caplog, wait_for_run):
    caplog.set_level(logging.DEBUG)
    response = trigger(client)

    assert response.status_code == 202, response.content
    body = response.json()
    run_id = body["run_id"]
    assert body["task"] == "clear_sessions"
    assert body["ui_url"] == f"https://dagster.example.com/runs/{run_id}"
    assert body["status_url"] == f"http://testserver/api/v1/scheduled/clear_sessions/runs/{run_id}/"

    run = wait_for_run(run_id)
    assert run.status == "SUCCESS"
    assert run.tags["validibot/trigger"] == "http"
    assert run.tags["validibot/task"] == "clear_sessions"

    status = client.get(
        f"/api/v1/scheduled/clear_sessions/runs/{run_id}/",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert status.status_code == 200
    assert status.json()["status"] == "SUCCESS"
    assert status.json()["summary"]["status"] == "completed"
    assert TOKEN not in caplog.text


def test_a_run_status_is_only_shown_under_its_own_task(client, live, wait_for_run):
    run_id = trigger(client, body='{"dry_run": true}').json()["run_id"]
    wrong = client.get(
        f"/api/v1/scheduled/purge_expired_submissions/runs/{run_id}/",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert wrong.status_code == 404
    wait_for_run(run_id)
    assert live.run_summary(run_id)["dry_run"] is True


def test_a_scoped_token_launches_its_own_task(client, live, wait_for_run):
    response = trigger(client, token=SCOPED_TOKEN)
    assert response.status_code == 202
    assert wait_for_run(response.json()["run_id"]).status == "SUCCESS"


def test_an_idempotency_key_returns_the_same_run(client, live, clock, wait_for_run):
    before = {r.run_id for r in live.recent_runs("cleanup_idempotency_keys", limit=50)}
    key = {"Idempotency-Key": "cloud-scheduler-2026-11-25T12:00"}

    first = trigger(client, task="cleanup_idempotency_keys", **key)
    second = trigger(client, task="cleanup_idempotency_keys", **key)

    assert first.status_code == 202
    assert second.status_code == 200
    assert second["Idempotent-Replayed"] == "true"
    assert second.json()["run_id"] == first.json()["run_id"]
    after = {r.run_id for r in live.recent_runs("cleanup_idempotency_keys", limit=50)}
    assert after - before == {first.json()["run_id"]}  # one run launched, not two

    reused = trigger(client, task="cleanup_idempotency_keys", body='{"dry_run": true}', **key)
    assert reused.status_code == 422

    clock.now += timedelta(hours=25)  # past the key's lifetime: a new request, a new run
    third = trigger(client, task="cleanup_idempotency_keys", **key)
    assert third.status_code == 202
    assert third.json()["run_id"] != first.json()["run_id"]
    assert IdempotencyKey.objects.count() == 1
    for response in (first, third):
        wait_for_run(response.json()["run_id"])


def test_a_webserver_that_stops_answering_is_503(client, live, dagster_stack):
    """Stop the real webserver mid-module (last test): the trigger says so, clearly."""
    webserver = next(p for p in dagster_stack.processes if p.name == "webserver")
    webserver.stop()
    response = trigger(client)
    assert response.status_code == 503
    assert response.json() == {
        "error": "scheduler unavailable: the Dagster webserver did not answer; retry later"
    }
