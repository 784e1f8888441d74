"""A run that dies half-way keeps the batches it committed; the next run carries on."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models.query import QuerySet

from tests.factories import IdempotencyKeyFactory
from tests.validibot.conftest import NOW, run_command
from validibot.core.maintenance import parse_summary
from validibot.operations.models import IdempotencyKey


@pytest.mark.django_db(transaction=True)
def test_a_crash_in_batch_two_keeps_batch_one_and_the_next_run_finishes(monkeypatch):
    for _ in range(5):
        IdempotencyKeyFactory(expires_at=NOW - timedelta(hours=1))
    live = IdempotencyKeyFactory(expires_at=NOW + timedelta(hours=1))
    real_delete = QuerySet.delete
    calls: list[int] = []

    def crash_on_second_batch(queryset: QuerySet):
        calls.append(len(calls) + 1)
        if len(calls) == 2:
            raise ConnectionError("database connection lost")
        return real_delete(queryset)

    out = io.StringIO()
    with monkeypatch.context() as patch:
        patch.setattr(QuerySet, "delete", crash_on_second_batch)
        with pytest.raises(CommandError, match="database connection lost"):
            call_command("cleanup_idempotency_keys", "--batch-size=2", stdout=out)

    summary = parse_summary(out.getvalue())
    assert summary["status"] == "failed"
    assert summary["counts"] == {"deleted": 2}
    assert IdempotencyKey.objects.count() == 4, "batch 1 committed, batch 2 rolled back"

    assert run_command("cleanup_idempotency_keys", "--batch-size=2").counts == {"deleted": 3}
    assert list(IdempotencyKey.objects.values_list("pk", flat=True)) == [live.pk]
