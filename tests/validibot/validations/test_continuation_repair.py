"""cleanup_stuck_runs' continuation repair: the three deadlines, the outcomes, limit, dry run."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.factories import ValidationRunContinuationFactory, ValidationRunFactory
from tests.validibot.conftest import NOW
from validibot.validations.continuations import (
    MAX_DISPATCH_ATTEMPTS,
    repair_validation_run_continuations,
)
from validibot.validations.models import RunStatus, ValidationRunContinuation

pytestmark = pytest.mark.django_db

SECOND = timedelta(seconds=1)
EPSILON = timedelta(microseconds=1)
PROCESSING, DISPATCH, EXECUTION = 600 * SECOND, 300 * SECOND, 2100 * SECOND


def continuation(**fields) -> ValidationRunContinuation:
    return ValidationRunContinuationFactory(**fields)


def received(ago: timedelta, **fields) -> ValidationRunContinuation:
    return continuation(callback_received_at=NOW - ago, **fields)


def dispatched(ago: timedelta, attempts: int = 1, **fields) -> ValidationRunContinuation:
    return received(PROCESSING + ago, dispatched_at=NOW - ago, dispatch_attempts=attempts, **fields)


def started(ago: timedelta, **fields) -> ValidationRunContinuation:
    return dispatched(ago + SECOND, execution_started_at=NOW - ago, **fields)


def fresh(row: ValidationRunContinuation) -> ValidationRunContinuation:
    row.refresh_from_db()
    return row


def repair_counts(result) -> dict[str, int]:
    return {k: v for k, v in result.counts.items() if k.startswith("continuations_")}


def test_each_deadline_decides_at_its_boundary(run):
    never_sent = received(PROCESSING + EPSILON)
    processing = received(PROCESSING)
    lost_dispatch = dispatched(DISPATCH + EPSILON)
    queued = dispatched(DISPATCH)
    died_executing = started(EXECUTION + EPSILON, attempts=2)
    executing = started(EXECUTION)

    result = run("cleanup_stuck_runs")

    assert (
        "Continuation repair: examined=6, dispatched=3, already_dispatched=1, busy=2, "
        "not_required=0, failed=0" in result.stdout.splitlines()
    )
    assert repair_counts(result) == {
        "continuations_eligible": 3,
        "continuations_examined": 6,
        "continuations_dispatched": 3,
        "continuations_already_dispatched": 1,
        "continuations_busy": 2,
        "continuations_not_required": 0,
        "continuations_failed": 0,
    }
    for row, attempts in ((never_sent, 1), (lost_dispatch, 2), (died_executing, 3)):
        fresh(row)
        assert (row.dispatched_at, row.dispatch_attempts) == (NOW, attempts)
        assert row.execution_started_at is None
        assert row.closed_at is None
    assert fresh(processing).dispatched_at is None
    assert fresh(queued).dispatched_at == NOW - DISPATCH
    assert fresh(executing).execution_started_at == NOW - EXECUTION


def test_an_ended_run_closes_its_continuation_and_a_hopeless_one_is_given_up(run):
    canceled = received(PROCESSING + SECOND)
    canceled.run.status = RunStatus.CANCELED
    canceled.run.save()
    hopeless = dispatched(DISPATCH + SECOND, attempts=MAX_DISPATCH_ATTEMPTS)
    done = dispatched(DISPATCH + SECOND, closed_at=NOW - SECOND, closed_reason="completed")

    result = run("cleanup_stuck_runs")

    assert result.counts["continuations_not_required"] == 1
    assert result.counts["continuations_failed"] == 1
    assert result.counts["continuations_examined"] == 2  # the completed one is not open
    assert (fresh(canceled).closed_at, canceled.closed_reason) == (NOW, "not_required")
    assert (fresh(hopeless).closed_at, hopeless.closed_reason) == (NOW, "gave_up")
    assert fresh(hopeless).dispatch_attempts == MAX_DISPATCH_ATTEMPTS
    assert fresh(done).closed_at == NOW - SECOND


def test_the_timeout_sweep_leaves_runs_with_an_open_continuation_to_the_repair(run):
    stuck_since = NOW - timedelta(hours=2)
    repaired = received(PROCESSING + SECOND, run__started_at=stuck_since)
    given_up = dispatched(
        DISPATCH + SECOND, attempts=MAX_DISPATCH_ATTEMPTS, run__started_at=stuck_since
    )
    plain = ValidationRunFactory(status=RunStatus.RUNNING, started_at=stuck_since)

    result = run("cleanup_stuck_runs", "--timeout-minutes=30")

    assert result.counts["timed_out"] == 2
    assert fresh(repaired).run.status == RunStatus.RUNNING
    given_up.run.refresh_from_db()
    plain.refresh_from_db()
    assert (given_up.run.status, plain.status) == (RunStatus.TIMED_OUT, RunStatus.TIMED_OUT)


def test_a_second_pass_dispatches_nothing_more(run):
    rows = [received(PROCESSING + SECOND) for _ in range(3)]
    run("cleanup_stuck_runs")
    after_first = list(ValidationRunContinuation.objects.order_by("pk").values())

    again = run("cleanup_stuck_runs")

    assert again.counts["continuations_dispatched"] == 0
    assert again.counts["continuations_already_dispatched"] == len(rows)
    assert list(ValidationRunContinuation.objects.order_by("pk").values()) == after_first


def test_batch_size_limits_the_pass_and_stale_rows_come_first(run):
    busy = [received(SECOND) for _ in range(3)]  # older pks than the stale ones
    stale = [received(PROCESSING + SECOND) for _ in range(3)]

    result = run("cleanup_stuck_runs", "--batch-size=2")

    assert result.counts["continuations_examined"] == 2
    assert result.counts["continuations_dispatched"] == 2
    assert [fresh(row).dispatched_at is not None for row in stale] == [True, True, False]
    assert all(fresh(row).dispatched_at is None for row in busy)


def test_dry_run_counts_the_eligible_and_changes_nothing(run):
    received(PROCESSING + SECOND)
    dispatched(DISPATCH + SECOND)
    received(SECOND)
    ended = received(PROCESSING + SECOND)
    ended.run.status = RunStatus.SUCCEEDED
    ended.run.save()
    before = list(ValidationRunContinuation.objects.order_by("pk").values())

    result = run("cleanup_stuck_runs", "--dry-run")

    assert "[DRY RUN] Found 2 durable continuation(s) eligible for repair." in result.stdout
    assert result.counts["continuations_eligible"] == 2
    assert result.counts["continuations_dispatched"] == 0
    assert list(ValidationRunContinuation.objects.order_by("pk").values()) == before
    assert run("cleanup_stuck_runs").counts["continuations_eligible"] == 2


@pytest.mark.parametrize("value", ["0", "-1"])
def test_a_batch_size_below_one_is_refused(value):
    row = received(PROCESSING + SECOND)
    with pytest.raises(CommandError, match="--batch-size: must be a positive integer"):
        call_command("cleanup_stuck_runs", f"--batch-size={value}")
    with pytest.raises(CommandError, match="--batch-size: must be a positive integer"):
        call_command("cleanup_stuck_runs", batch_size=int(value))
    assert fresh(row).dispatched_at is None


def test_the_deadlines_come_from_the_settings(settings):
    settings.VALIDATION_CALLBACK_PROCESSING_STALE_SECONDS = 60
    settings.VALIDATION_CONTINUATION_DISPATCH_STALE_SECONDS = 10
    settings.VALIDATION_CONTINUATION_EXECUTION_STALE_SECONDS = 20
    never_sent = received(61 * SECOND)
    queued = dispatched(11 * SECOND)
    executing = started(21 * SECOND)

    result = repair_validation_run_continuations(limit=10, now=NOW)

    assert result.counts["dispatched"] == 3
    assert all(fresh(row).dispatched_at == NOW for row in (never_sent, queued, executing))
    with pytest.raises(ValueError, match="limit must be at least 1, got 0"):
        repair_validation_run_continuations(limit=0)
