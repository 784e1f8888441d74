"""Root fixtures: registry isolation and real-service helpers shared by every test package."""

from __future__ import annotations

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
