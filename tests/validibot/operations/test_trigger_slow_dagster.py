"""Issue 15, D5: one Idempotency-Key never yields two runs, however slow Dagster answers.

A real webserver and daemon sit behind :class:`~tests.support.graphql_relay.GraphQLRelay`,
our loopback stand-in for a slow network (a real webserver cannot be slowed on demand). The
relay holds the trigger's launch past the client's timeout, either after Dagster created the
run (the answer is late) or before Dagster saw it (the launch itself is late), or loses it.
Runs are counted in the real instance by the tag the key's claim chose.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.graphql_relay import GraphQLRelay
from tests.validibot.operations.conftest import TOKEN
from validibot.operations import trigger
from validibot.operations.dagster_client import DagsterClient
from validibot.operations.models import IdempotencyKey
from validibot.tasks.vocabulary import IDEMPOTENCY_TAG

pytestmark = [pytest.mark.services, pytest.mark.django_db, pytest.mark.timeout(300)]

TASK = "cleanup_idempotency_keys"
HOLD_DEADLINE = 60


@pytest.fixture
def relay(live, dagster_stack, tokens, monkeypatch):
    """The trigger talks to the real webserver through the relay, with a 2 s launch timeout."""
    with GraphQLRelay(upstream=dagster_stack.url) as relay:
        tokens.VALIDIBOT_DAGSTER_URL = relay.url
        monkeypatch.setattr(trigger, "LAUNCH_TIMEOUT_SECONDS", 2.0)
        yield relay


def trigger_with_key(client, key: str):
    return client.post(
        f"/api/v1/scheduled/{TASK}/",
        data='{"dry_run": true}',
        content_type="application/json",
        headers={"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": key},
    )


def claimed_tag(key: str) -> str:
    """The run tag the key's claim chose (while the outcome is open)."""
    return IdempotencyKey.objects.get(key=f"scheduled-trigger:{key}").response_body["tag"]


def runs_for(live: DagsterClient, tag: str) -> list[str]:
    return [run.run_id for run in live.runs_tagged({IDEMPOTENCY_TAG: tag}, limit=10)]


def test_a_late_answer_keeps_the_key_and_the_retry_finds_the_run(client, live, relay):
    """D5 as reported: Dagster created the run but answered after the client's timeout; the
    trigger said 503 and released the key, and the retry launched a second run."""
    relay.hold_launches("after")
    first = trigger_with_key(client, "slow-answer")
    assert first.status_code == 503
    assert "retry later with the same Idempotency-Key" in first.json()["error"]
    tag = claimed_tag("slow-answer")
    assert relay.forwarded.wait(HOLD_DEADLINE), "Dagster never answered the held launch"
    created = relay.launch_answers[0]["data"]["launchRun"]["run"]["runId"]

    retry = trigger_with_key(client, "slow-answer")
    relay.release()

    assert retry.status_code == 200
    assert retry["Idempotent-Replayed"] == "true"
    assert retry.json()["run_id"] == created
    assert len(relay.launches) == 1  # the retry looked the run up; it launched nothing
    assert runs_for(live, tag) == [created]
    again = trigger_with_key(client, "slow-answer")
    assert again.status_code == 200 and again.json()["run_id"] == created


def test_a_launch_still_on_its_way_is_waited_for_not_repeated(client, live, relay):
    """The retry finds no run yet (Dagster has not seen the first launch): it answers 503 with
    Retry-After instead of launching; once the late launch lands, the next retry finds it."""
    relay.hold_launches("before")
    first = trigger_with_key(client, "slow-launch")
    assert first.status_code == 503
    tag = claimed_tag("slow-launch")

    early = trigger_with_key(client, "slow-launch")
    assert early.status_code == 503
    assert "unknown outcome and no run yet" in early.json()["error"]
    assert int(early["Retry-After"]) > 0
    assert len(relay.launches) == 1  # only the held one

    relay.release()
    assert relay.forwarded.wait(HOLD_DEADLINE), "the held launch never reached Dagster"
    landed = relay.launch_answers[-1]["data"]["launchRun"]["run"]["runId"]
    retry = trigger_with_key(client, "slow-launch")
    assert retry.status_code == 200 and retry.json()["run_id"] == landed
    assert runs_for(live, tag) == [landed]


def test_a_lost_launch_is_launched_once_after_the_settle_window(client, live, relay, clock):
    relay.hold_launches("drop")
    first = trigger_with_key(client, "lost-launch")
    assert first.status_code == 503
    tag = claimed_tag("lost-launch")
    assert runs_for(live, tag) == []

    clock.now += timedelta(seconds=trigger.OUTCOME_SETTLE_SECONDS + 1)
    retry = trigger_with_key(client, "lost-launch")
    assert retry.status_code == 202
    again = trigger_with_key(client, "lost-launch")
    assert again.status_code == 200 and again.json()["run_id"] == retry.json()["run_id"]
    assert runs_for(live, tag) == [retry.json()["run_id"]]
