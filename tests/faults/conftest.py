"""Fixtures of the fault suite: a production-like stack with a fast run-monitoring clock.

The stack keeps its Django and Dagster databases on the shared Postgres (it never restarts
it) but has a private Redis: the tests inspect and re-queue broker messages, and the shared
server's few spare db numbers could let another suite's workers take our steps. The restart
tests build their own stack on private servers (``private_services``).
"""

from __future__ import annotations

import os

import pytest

from tests.faults import figures
from tests.faults.helpers import running_fault_stack, write_fault_instance_yaml

REPORT_ENV = "VALIDIBOT_FAULTS_REPORT"


@pytest.fixture(scope="session", autouse=True)
def _fresh_figures():
    figures.reset()


@pytest.fixture(scope="package")
def fault_stack(postgres_service, tmp_path_factory):
    """Celery on a private Redis, Postgres storage, the daemon and the webserver; no worker
    (each test starts and kills its own). Built-in schedules are paused by an override file."""
    root = tmp_path_factory.mktemp("fault-stack")
    with running_fault_stack(
        root, executor="celery", instance_yaml=write_fault_instance_yaml(root)
    ) as stack:
        yield stack


@pytest.fixture
def stack(fault_stack):
    """The fault stack; every worker a test starts is stopped when it ends, pass or fail, so
    the next test starts with no consumer on the queues."""
    yield fault_stack
    for proc in fault_stack.processes:
        if proc.name.startswith("worker-") and proc.alive():
            proc.stop()


def pytest_sessionfinish(session, exitstatus):
    """Render the figures to test-artifacts/faults/reliability.md whenever fault tests ran,
    and to docs/reliability.md too when ``VALIDIBOT_FAULTS_REPORT=1`` (the committed copy)."""
    ran = any(item.nodeid.startswith("tests/faults/") for item in session.items)
    if not ran or not figures.load():
        return
    from tests.faults.report import DOC, render

    render(out=figures.FIGURES_DIR / "reliability.md")
    if os.environ.get(REPORT_ENV, "").lower() in {"1", "true", "yes"}:
        render(out=DOC)
