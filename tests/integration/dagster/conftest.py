"""Fixtures for tests that run real Dagster processes against Postgres and Redis."""

from __future__ import annotations

import pytest

from tests.support.dagster_stack import DagsterStack


@pytest.fixture(scope="module")
def celery_stack(postgres_service, redis_service, tmp_path_factory):
    """Postgres instance (deploy/dagster.yaml), Redis broker, one worker per queue."""
    root = tmp_path_factory.mktemp("celery-stack")
    # Every process of the stack (workers included) finds the flaky task's marker here.
    extra_env = {"VALIDIBOT_TEST_FLAKY_MARKER": str(root / "flaky-marker")}
    with DagsterStack.create(root, executor="celery", extra_env=extra_env) as stack:
        stack.start_worker("default", name="default-worker")
        stack.start_worker("docker", name="docker-worker")
        yield stack
