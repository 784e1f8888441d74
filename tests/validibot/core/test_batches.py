"""The batch loop: it stops between batches when asked, and commits whole batches only."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from datetime import timedelta

import pytest

from tests.factories import IdempotencyKeyFactory, SubmissionFactory
from tests.validibot.conftest import NOW
from validibot.core.batches import (
    DEADLINE_REASON,
    StopRequested,
    chunks,
    run_in_batches,
    shell_signals,
)
from validibot.core.runner import run_task_command
from validibot.operations.models import IdempotencyKey
from validibot.submissions.models import Submission


class FlipAfter:
    """A stop check that says carry on ``batches`` times, then returns ``reason``."""

    def __init__(self, batches: int, reason: str = "run canceled") -> None:
        self.calls = 0
        self.batches = batches
        self.reason = reason

    def __call__(self) -> str | None:
        self.calls += 1
        return self.reason if self.calls > self.batches else None


def test_the_loop_applies_batches_until_the_claim_is_empty():
    applied: list[Sequence[int]] = []
    reported: list[tuple[int, int]] = []

    done = run_in_batches(
        chunks(list(range(7))),
        applied.append,
        batch_size=3,
        report=lambda number, items, _: reported.append((number, len(items))),
        using=None,
    )

    assert done == 3
    assert applied == [[0, 1, 2], [3, 4, 5], [6]]
    assert reported == [(1, 3), (2, 3), (3, 1)]


def test_the_loop_honours_max_batches():
    applied: list[Sequence[int]] = []
    done = run_in_batches(
        chunks(list(range(7))), applied.append, batch_size=2, max_batches=2, using=None
    )
    assert done == 2 and applied == [[0, 1], [2, 3]]


def test_a_stop_check_that_flips_after_batch_one_stops_before_batch_two():
    applied: list[Sequence[int]] = []
    reported: list[int] = []

    with pytest.raises(StopRequested) as stop:
        run_in_batches(
            chunks(list(range(10))),
            applied.append,
            batch_size=3,
            should_stop=FlipAfter(1),
            report=lambda number, *_: reported.append(number),
            using=None,
        )

    assert stop.value.reason == "run canceled"
    assert applied == [[0, 1, 2]] and reported == [1]


@pytest.mark.django_db
def test_a_failing_batch_rolls_back_and_reports_nothing():
    key = IdempotencyKeyFactory()
    reported: list[int] = []

    def delete_then_fail(pks: Sequence[int]) -> None:
        IdempotencyKey.objects.filter(pk__in=pks).delete()
        raise ConnectionError("lost")

    with pytest.raises(ConnectionError):
        run_in_batches(
            lambda size: [key.pk],
            delete_then_fail,
            batch_size=1,
            report=lambda number, *_: reported.append(number),
        )

    assert IdempotencyKey.objects.filter(pk=key.pk).exists() and reported == []


STOPPABLE = [
    ("cleanup_idempotency_keys", IdempotencyKeyFactory, "deleted", 0),
    # The purge's repair pass runs first through the same loop: its one (empty) chunk asks
    # the stop check once before the purge's first batch does.
    ("purge_expired_submissions", SubmissionFactory, "purged", 1),
]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("task", "factory", "count", "repair_checks"), STOPPABLE, ids=[c[0] for c in STOPPABLE]
)
def test_a_command_stopped_after_batch_one_changed_exactly_one_batch(
    task, factory, count, repair_checks
):
    for _ in range(5):
        factory(expires_at=NOW - timedelta(hours=1))

    stop = FlipAfter(1 + repair_checks)
    summary = run_task_command(task, ["--batch-size", "2"], should_stop=stop)

    assert summary["status"] == "stopped" and summary["reason"] == "run canceled"
    assert summary["counts"][count] == 2
    if task == "cleanup_idempotency_keys":
        assert IdempotencyKey.objects.count() == 3
    else:
        assert summary["counts"]["batches"] == 1
        assert Submission.objects.filter(content_purged_at__isnull=False).count() == 2
        half_done = Submission.objects.filter(content_purged_at__isnull=True, content="")
        assert not half_done.exists()


@pytest.mark.django_db
def test_a_passed_deadline_stops_before_any_row_is_touched():
    for _ in range(3):
        IdempotencyKeyFactory(expires_at=NOW - timedelta(hours=1))

    summary = run_task_command("cleanup_idempotency_keys", deadline=time.time() - 1)

    assert summary["status"] == "stopped"
    assert summary["reason"] == DEADLINE_REASON
    assert summary["counts"] == {"deleted": 0}
    assert IdempotencyKey.objects.count() == 3


@pytest.mark.django_db
def test_a_deadline_in_the_future_lets_the_command_finish():
    IdempotencyKeyFactory(expires_at=NOW - timedelta(hours=1))

    summary = run_task_command("cleanup_idempotency_keys", deadline=time.time() + 3600)

    assert summary["status"] == "completed" and summary["counts"] == {"deleted": 1}


@pytest.mark.django_db
def test_a_stop_check_also_stops_a_command_outside_the_database():
    from validibot.notifications.periodic_emails import register_periodic_email_handler

    calls: list[str] = []
    for name in ("first", "second"):
        register_periodic_email_handler(
            name, lambda *, stdout, now, dry_run, name=name: calls.append(name) or 1
        )

    summary = run_task_command("send_periodic_emails", should_stop=FlipAfter(1))

    assert summary["status"] == "stopped" and calls == ["first"]
    assert summary["counts"]["sent"] == 1


def test_the_first_sigterm_sets_the_flag_and_the_second_gets_the_old_handler():
    before = signal.getsignal(signal.SIGTERM)
    with shell_signals() as flag:
        assert flag is not None and flag.received is None
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 5
        while flag.received is None and time.monotonic() < deadline:
            time.sleep(0.01)  # the handler runs between bytecodes of this thread
        assert flag.received == "SIGTERM"
        assert signal.getsignal(signal.SIGTERM) is before, "second signal acts as before"
    assert signal.getsignal(signal.SIGTERM) is before
