"""The HTTP trigger's fixtures: tokens in settings, and a real Dagster stack to launch on."""

from __future__ import annotations

import pytest

from tests.support.dagster_stack import DagsterStack, free_port
from tests.support.graphql_relay import GraphQLRelay
from validibot.operations.dagster_client import DagsterClient

TOKEN = "trigger-token-3f9a7c1e-global"
SCOPED_TOKEN = "trigger-token-b81d44aa-scoped-to-clear-sessions"


@pytest.fixture
def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def tokens(settings, dead_url):
    """Trigger enabled with a global and a task-scoped token; the webserver URL is dead."""
    settings.VALIDIBOT_TRIGGER_TOKEN = TOKEN
    settings.VALIDIBOT_TRIGGER_TASK_TOKENS = {"clear_sessions": SCOPED_TOKEN}
    settings.VALIDIBOT_DAGSTER_URL = dead_url
    settings.VALIDIBOT_DAGSTER_UI_URL = dead_url
    return settings


@pytest.fixture
def dagster_spy(tokens):
    """A Dagster that is down (503) but counts every launch that reached it: a refused
    request must leave ``dagster_spy.launches`` empty."""
    with GraphQLRelay() as relay:
        tokens.VALIDIBOT_DAGSTER_URL = tokens.VALIDIBOT_DAGSTER_UI_URL = relay.url
        yield relay


@pytest.fixture(scope="module")
def dagster_stack(postgres_service, tmp_path_factory):
    """Postgres-backed instance, webserver and daemon: a launched run really executes."""
    with DagsterStack.create(tmp_path_factory.mktemp("trigger"), executor="in_process") as stack:
        stack.start_daemon()
        _, url = stack.start_webserver()
        stack.url = url
        yield stack


@pytest.fixture
def live(tokens, dagster_stack):
    """Settings pointing the trigger at the stack's real webserver; returns a client for it."""
    tokens.VALIDIBOT_DAGSTER_URL = dagster_stack.url
    tokens.VALIDIBOT_DAGSTER_UI_URL = "https://dagster.example.com"
    return DagsterClient(dagster_stack.url)


@pytest.fixture
def wait_for_run(live, dagster_stack):
    """``wait_for_run(run_id)`` -> RunInfo; a timeout fails with the daemon's log tail."""
    from validibot.operations.dagster_client import RunTimeout

    def wait(run_id: str, timeout: float = 300):
        try:
            return live.wait_for_run(run_id, timeout=timeout)
        except RunTimeout as exc:
            daemon = next(p for p in dagster_stack.processes if p.name == "daemon")
            raise AssertionError(f"{exc}\n--- daemon log ---\n{daemon.log()[-4000:]}") from exc

    return wait
