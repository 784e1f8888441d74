"""Smoke test: migrations apply and the registry loads."""

import pytest

from validibot.tasks.registry import get_tasks


@pytest.mark.django_db
def test_registry_has_the_eleven_builtin_tasks_of_upstream_and_two_ops_only_ones():
    ids = {t.id for t in get_tasks()}
    assert len(ids) == 13
    assert {"prune_dagster_history", "purge_stale_oidc_clients"} <= ids
