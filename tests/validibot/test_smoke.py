"""Smoke test: migrations apply and the registry loads."""

import pytest

from validibot.tasks.registry import get_tasks


@pytest.mark.django_db
def test_registry_has_the_eleven_builtin_tasks_of_upstream():
    assert len(get_tasks()) == 11
