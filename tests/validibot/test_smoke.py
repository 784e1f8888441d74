"""Smoke test: migrations apply and the registry loads."""

import pytest

from validibot.tasks.registry import get_tasks


@pytest.mark.django_db
def test_registry_has_the_eleven_builtin_tasks_of_upstream_and_the_ops_only_prune():
    ids = {t.id for t in get_tasks()}
    assert len(ids) == 12
    assert "prune_dagster_history" in ids
