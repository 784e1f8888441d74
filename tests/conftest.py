"""Root fixtures: registry isolation and real-service helpers shared by every test package."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.support.services import ensure_service
from validibot.tasks.registry import reset_registry_for_tests

SERVICE_DIRS = ("integration", "faults")
"""Everything under these folders needs real services: marked so plain ``pytest`` skips it."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the service folders' tests ``services``, so the fast default loop leaves them out."""
    for item in items:
        parts = item.path.relative_to(config.rootpath).parts
        if len(parts) > 1 and parts[0] == "tests" and parts[1] in SERVICE_DIRS:
            item.add_marker(pytest.mark.services)


FAST_LOOP_BUDGET_SECONDS = float(os.environ.get("VALIDIBOT_FAST_LOOP_BUDGET_SECONDS", "90"))
"""What plain ``pytest`` (the inner loop) may take. A new test that is slow must be marked
(``slow``, ``subprocess``, ``services``, ``postgres``) so the loop stays under this."""
_started: dict[str, float] = {}


def _is_the_fast_loop(config: pytest.Config) -> bool:
    """Plain ``pytest``: the default marker selection over the whole tree, no test chosen."""
    addopts = list(config.getini("addopts"))
    default = addopts[addopts.index("-m") + 1] if "-m" in addopts else None
    roots = {config.rootpath, *(config.rootpath / p for p in config.getini("testpaths"))}
    whole_tree = all(Path(arg).resolve() in roots for arg in config.args)
    return (
        config.getoption("markexpr") == default and whole_tree and not config.getoption("keyword")
    )


def pytest_configure(config: pytest.Config) -> None:
    _started["at"] = time.monotonic()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the fast loop loudly when it outgrows its budget (never the marked suites)."""
    elapsed = time.monotonic() - _started.get("at", time.monotonic())
    if _is_the_fast_loop(session.config) and elapsed > FAST_LOOP_BUDGET_SECONDS:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(
                f"FAST LOOP OVER BUDGET: {elapsed:.0f} s > {FAST_LOOP_BUDGET_SECONDS} s. "
                "Mark the slowest new tests (pytest --durations=20) slow/subprocess/services.",
                red=True,
                bold=True,
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _isolated_registry():
    """Downstream registrations made by one test never leak into the next."""
    reset_registry_for_tests()
    yield
    reset_registry_for_tests()


@pytest.fixture(scope="session")
def postgres_service() -> None:
    """The real PostgreSQL on 127.0.0.1:5432, started if it is down."""
    ensure_service("postgres")


@pytest.fixture(scope="session")
def redis_service() -> None:
    """The real Redis on 127.0.0.1:6379, started if it is down."""
    ensure_service("redis")
