"""Two runs never process the same row: claims use FOR UPDATE SKIP LOCKED where it exists.

SQLite has no row locks (it serialises writers, and Django's ``select_for_update`` is a no-op
there), so the test that holds rows in one transaction while another run works exists only
when the suite runs on PostgreSQL; the SQL check runs on both.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.db.models import Model
from django.test.utils import CaptureQueriesContext

from tests.factories import (
    IdempotencyKeyFactory,
    OIDCClientFactory,
    SubmissionFactory,
    ValidationRunContinuationFactory,
)
from tests.validibot.conftest import NOW, CommandRun, run_command
from validibot.idp.models import OIDCClient
from validibot.operations.models import IdempotencyKey
from validibot.submissions.models import Submission
from validibot.validations.models import ValidationRunContinuation

ON_POSTGRES = connection.vendor == "postgresql"

CASES = [
    (
        "purge_expired_submissions",
        lambda: SubmissionFactory(expires_at=NOW - timedelta(hours=1)),
        "purged",
    ),
    (
        "cleanup_idempotency_keys",
        lambda: IdempotencyKeyFactory(expires_at=NOW - timedelta(hours=1)),
        "deleted",
    ),
    (
        "purge_stale_oidc_clients",
        lambda: OIDCClientFactory(created_at=NOW - timedelta(days=60)),
        "deleted",
    ),
    (
        "cleanup_stuck_runs",
        lambda: ValidationRunContinuationFactory(callback_received_at=NOW - timedelta(hours=1)),
        "continuations_dispatched",
    ),
]

UNTOUCHED: dict[type[Model], Callable[[], list[int]]] = {
    Submission: lambda: sorted(
        Submission.objects.filter(content_purged_at__isnull=True).values_list("pk", flat=True)
    ),
    IdempotencyKey: lambda: sorted(IdempotencyKey.objects.values_list("pk", flat=True)),
    OIDCClient: lambda: sorted(OIDCClient.objects.values_list("pk", flat=True)),
    ValidationRunContinuation: lambda: sorted(
        ValidationRunContinuation.objects.filter(dispatched_at__isnull=True).values_list(
            "pk", flat=True
        )
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize(("command", "make", "count"), CASES, ids=[c[0] for c in CASES])
def test_claims_lock_rows_and_skip_locked_ones_where_supported(command, make, count):
    make()

    with CaptureQueriesContext(connection) as queries:
        result = run_command(command)

    assert result.counts[count] == 1
    locking = [q["sql"] for q in queries if "FOR UPDATE" in q["sql"]]
    if connection.features.has_select_for_update_skip_locked:
        assert locking and all("SKIP LOCKED" in sql for sql in locking)
    else:
        assert locking == []


def run_in_other_connection(command: str) -> CommandRun:
    """Run the command on a fresh connection in a thread; fail if it blocks on a lock."""
    results: list[CommandRun] = []

    def work() -> None:
        try:
            results.append(run_command(command))
        finally:
            connections.close_all()

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), f"{command} blocked on rows another run holds"
    assert results, f"{command} raised in the worker thread"
    return results[0]


if ON_POSTGRES:

    @pytest.mark.postgres
    @pytest.mark.django_db(transaction=True)
    @pytest.mark.parametrize(("command", "make", "count"), CASES, ids=[c[0] for c in CASES])
    def test_a_concurrent_run_skips_rows_another_run_holds(
        command: str, make: Callable[[], Model], count: str
    ):
        rows = [make() for _ in range(5)]
        model = type(rows[0])
        held = [row.pk for row in rows[:2]]

        with transaction.atomic():
            locked = list(model._default_manager.select_for_update().filter(pk__in=held))
            assert len(locked) == 2
            other = run_in_other_connection(command)

        assert other.counts[count] == 3
        assert UNTOUCHED[model]() == held

        # Released: the next run takes exactly the rows the first one skipped.
        assert run_command(command).counts[count] == 2
        assert run_command(command).counts[count] == 0
