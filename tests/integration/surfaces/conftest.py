"""A Postgres-backed Dagster stack with a webserver (and, where runs must execute, the daemon)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.dagster_stack import DagsterStack, free_port
from validibot.operations.dagster_client import DagsterClient


@dataclass
class Surfaces:
    """A running stack, its webserver URL, a client for it and the incident overrides file."""

    stack: DagsterStack
    url: str
    client: DagsterClient
    overrides: Path

    def manage(self, *args: str, env: dict[str, str] | None = None):
        """``python manage.py <args>`` in the stack's environment (as an operator runs it)."""
        return self.stack.run_cli([sys.executable, "manage.py", *args], env=env, timeout=120)

    def sync(self, *args: str, env: dict[str, str] | None = None):
        return self.manage("sync_schedules", "--url", self.url, *args, env=env)

    def wait(self, run_id: str, timeout: float = 150):
        """Wait for a run; a timeout fails with the daemon's log tail (if a daemon runs)."""
        from validibot.operations.dagster_client import RunTimeout

        try:
            return self.client.wait_for_run(run_id, timeout=timeout)
        except RunTimeout as exc:
            logs = [p.log()[-4000:] for p in self.stack.processes if p.name == "daemon"]
            raise AssertionError(f"{exc}\n--- daemon log ---\n{''.join(logs)}") from exc

    def ops(self, *args: str):
        """``validibot-ops <args>`` in the stack's environment."""
        return self.stack.run_cli(["validibot-ops", *args], timeout=180)


def _surfaces(root: Path, *, daemon: bool) -> DagsterStack:
    overrides = root / "schedule-overrides.yaml"
    overrides.write_text("", encoding="utf-8")  # empty: no override until a test writes one
    stack = DagsterStack.create(
        root,
        executor="in_process",
        extra_env={"VALIDIBOT_SCHEDULE_OVERRIDES": str(overrides)},
    )
    if daemon:
        stack.start_daemon()
    return stack


@pytest.fixture(scope="module")
def surfaces(postgres_service, tmp_path_factory):
    """Stack + webserver, no daemon: schedules never tick, runs stay QUEUED."""
    root = tmp_path_factory.mktemp("surfaces")
    with _surfaces(root, daemon=False) as stack:
        _, url = stack.start_webserver()
        yield Surfaces(stack, url, DagsterClient(url), root / "schedule-overrides.yaml")


@pytest.fixture(scope="module")
def running_surfaces(postgres_service, tmp_path_factory):
    """Stack + webserver + daemon: launched runs execute (in-process executor)."""
    root = tmp_path_factory.mktemp("running-surfaces")
    with _surfaces(root, daemon=True) as stack:
        _, url = stack.start_webserver()
        yield Surfaces(stack, url, DagsterClient(url), root / "schedule-overrides.yaml")


@pytest.fixture
def dead_url() -> str:
    """A loopback URL nothing listens on."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(autouse=True)
def _no_inherited_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process commands read overrides from this process's env: start without any."""
    if os.environ.get("VALIDIBOT_SCHEDULE_OVERRIDES"):
        monkeypatch.delenv("VALIDIBOT_SCHEDULE_OVERRIDES")
