"""The deleting cleanups: idempotency keys, callback receipts, sessions.

Each keeps the same contract (exact boundary, dry run, idempotent, bounded batches), so the
contract is tested once over all three; each command's own selection rule is tested on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.core.management import get_commands
from django.db.models import Model

from tests.factories import CallbackReceiptFactory, IdempotencyKeyFactory, SessionFactory
from tests.validibot.conftest import NOW
from validibot.operations.models import IdempotencyKey
from validibot.tasks.registry import get_tasks
from validibot.validations.models import CallbackReceipt

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Deleter:
    """A deleting command, its model, and how to make a row that is due / not due."""

    command: str
    model: type[Model]
    make_due: Callable[[], Model]
    make_live: Callable[[], Model]


DELETERS = [
    Deleter(
        "cleanup_idempotency_keys",
        IdempotencyKey,
        lambda: IdempotencyKeyFactory(expires_at=NOW - timedelta(hours=1)),
        lambda: IdempotencyKeyFactory(expires_at=NOW + timedelta(hours=1)),
    ),
    Deleter(
        "cleanup_callback_receipts",
        CallbackReceipt,
        lambda: CallbackReceiptFactory(received_at=NOW - timedelta(days=45)),
        lambda: CallbackReceiptFactory(received_at=NOW - timedelta(days=2)),
    ),
    Deleter(
        "clear_sessions",
        Session,
        lambda: SessionFactory(expire_date=NOW - timedelta(days=1)),
        lambda: SessionFactory(expire_date=NOW + timedelta(days=1)),
    ),
]


@pytest.fixture(params=DELETERS, ids=[d.command for d in DELETERS])
def deleter(request) -> Deleter:
    return request.param


def pks(model: type[Model]) -> set:
    return set(model._default_manager.values_list("pk", flat=True))


def test_deletes_due_rows_and_keeps_live_ones(deleter, run):
    for _ in range(3):
        deleter.make_due()
    live = {deleter.make_live().pk for _ in range(2)}

    result = run(deleter.command)

    assert (result.summary["task"], result.summary["status"]) == (deleter.command, "completed")
    assert result.counts == {"deleted": 3}
    assert pks(deleter.model) == live


def test_dry_run_changes_nothing(deleter, run):
    for _ in range(3):
        deleter.make_due()
    deleter.make_live()
    before = pks(deleter.model)

    result = run(deleter.command, "--dry-run")

    assert result.summary["dry_run"] is True
    assert result.counts == {"deleted": 3}
    assert "dry run: would delete 3" in result.stdout
    assert pks(deleter.model) == before


def test_second_run_is_a_no_op(deleter, run):
    for _ in range(3):
        deleter.make_due()
    live = {deleter.make_live().pk}
    run(deleter.command)

    assert run(deleter.command).counts == {"deleted": 0}
    assert pks(deleter.model) == live


def test_batch_limits_hold(deleter, run):
    for _ in range(5):
        deleter.make_due()
    live = {deleter.make_live().pk}

    first = run(deleter.command, "--batch-size=2", "--max-batches=2")

    assert first.counts == {"deleted": 4}
    assert "batch 2: deleted 2 (total 4)" in first.stdout
    assert "batch 3" not in first.stdout
    assert len(pks(deleter.model) - live) == 1
    assert run(deleter.command, "--dry-run", "--batch-size=1", "--max-batches=1").counts == {
        "deleted": 1
    }
    assert run(deleter.command, "--batch-size=2", "--max-batches=0").counts == {"deleted": 1}
    assert pks(deleter.model) == live


def test_batch_size_default_comes_from_settings(deleter, run, settings):
    settings.VALIDIBOT_CLEANUP_BATCH_SIZE = 2
    for _ in range(5):
        deleter.make_due()

    result = run(deleter.command)

    assert result.counts == {"deleted": 5}
    assert "batch 3: deleted 1 (total 5)" in result.stdout


def test_idempotency_keys_expire_at_now_inclusive(run):
    due = IdempotencyKeyFactory(expires_at=NOW)
    live = IdempotencyKeyFactory(expires_at=NOW + timedelta(microseconds=1))
    default_ttl = IdempotencyKeyFactory()

    assert run("cleanup_idempotency_keys").counts == {"deleted": 1}
    assert pks(IdempotencyKey) == {live.pk, default_ttl.pk}
    assert default_ttl.expires_at == NOW + timedelta(hours=24)
    assert not IdempotencyKey.objects.filter(pk=due.pk).exists()


def test_callback_receipts_older_than_the_window_go(run):
    cutoff = NOW - timedelta(days=30)
    older = CallbackReceiptFactory(received_at=cutoff - timedelta(microseconds=1))
    at_cutoff = CallbackReceiptFactory(received_at=cutoff)
    recent = CallbackReceiptFactory(received_at=NOW)

    assert run("cleanup_callback_receipts").counts == {"deleted": 1}
    assert pks(CallbackReceipt) == {at_cutoff.pk, recent.pk}
    assert not CallbackReceipt.objects.filter(pk=older.pk).exists()


def test_callback_receipt_window_from_option_and_setting(run, settings):
    eight_days = CallbackReceiptFactory(received_at=NOW - timedelta(days=8))
    three_days = CallbackReceiptFactory(received_at=NOW - timedelta(days=3))

    assert run("cleanup_callback_receipts", "--days=7").counts == {"deleted": 1}
    assert pks(CallbackReceipt) == {three_days.pk}
    assert eight_days.pk not in pks(CallbackReceipt)

    settings.VALIDIBOT_CALLBACK_RECEIPT_RETENTION_DAYS = 2
    assert run("cleanup_callback_receipts").counts == {"deleted": 1}
    assert pks(CallbackReceipt) == set()


def test_sessions_expire_at_now_inclusive(run):
    SessionFactory(expire_date=NOW)
    live = SessionFactory(expire_date=NOW + timedelta(microseconds=1))

    assert run("clear_sessions").counts == {"deleted": 1}
    assert pks(Session) == {live.pk}


def test_every_task_command_is_named_after_its_task_id_and_old_names_still_work():
    commands = get_commands()
    assert commands["clear_sessions"] == "validibot.core"
    assert commands["clearsessions"] == "django.contrib.sessions"  # Django's own, untouched
    assert commands["cleanup_containers"] == "validibot.validations"  # deprecated alias
    for task in get_tasks():
        assert task.command == task.id


def test_clearsessions_with_a_non_database_engine_uses_its_clear_expired(run, settings):
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"

    dry = run("clear_sessions", "--dry-run")
    real = run("clear_sessions")

    for result in (dry, real):
        assert result.summary["status"] == "completed"
        assert "is not batched here" in result.stdout
