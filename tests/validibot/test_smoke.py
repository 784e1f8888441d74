"""Smoke test: migrations apply and the registry loads."""

import pytest

from validibot.tasks.registry import get_tasks


@pytest.mark.django_db
def test_registry_has_nine_builtin_tasks():
    assert len(get_tasks()) == 9
