"""The retention repair passes that run before the purges (upstream fc6b7ef1, 86f3e902)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.storage import default_storage

from tests.factories import (
    PurgeRetryFactory,
    SubmissionFactory,
    ValidationOutputFactory,
    ValidationRunFactory,
)
from tests.validibot.conftest import NOW
from validibot.retention.models import PurgeRetry
from validibot.submissions.models import RetentionPolicy, Submission
from validibot.validations.models import RunStatus

pytestmark = pytest.mark.django_db

MINUTE = timedelta(minutes=1)
DNS = RetentionPolicy.DO_NOT_STORE


def ended_run(ago: timedelta, policy: str = RetentionPolicy.DAYS_7, **fields):
    submission = SubmissionFactory(retention_policy=policy, expires_at=NOW + 30 * 24 * 60 * MINUTE)
    return ValidationRunFactory(submission=submission, finished_at=NOW - ago, **fields)


def fresh(row):
    row.refresh_from_db()
    return row


def test_do_not_store_outputs_go_one_minute_after_the_run_ends_whatever_expires_at_says(run):
    past_grace = ValidationOutputFactory(
        run=ended_run(MINUTE + timedelta(microseconds=1), DNS), expires_at=NOW + timedelta(days=1)
    )
    within_grace = ValidationOutputFactory(run=ended_run(timedelta(seconds=30), DNS))
    kept_policy = ValidationOutputFactory(
        run=ended_run(2 * MINUTE), expires_at=NOW + timedelta(days=1)
    )
    active = ValidationOutputFactory(
        run=ValidationRunFactory(
            submission=SubmissionFactory(retention_policy=DNS), status=RunStatus.RUNNING
        ),
        expires_at=NOW + timedelta(days=1),
    )
    file_name = past_grace.file.name

    result = run("purge_expired_outputs")

    assert result.counts["purged"] == 1
    assert "repair pass: repaired 2 output deadline(s)" in result.stdout
    assert fresh(past_grace).content_purged_at == NOW
    assert not default_storage.exists(file_name)
    assert fresh(within_grace).content_purged_at is None
    assert within_grace.expires_at == within_grace.run.finished_at + MINUTE
    assert fresh(kept_policy).expires_at == NOW + timedelta(days=1), "a set deadline stays"
    assert fresh(active).expires_at == NOW + timedelta(days=1), "non-terminal runs untouched"
    assert active.content_purged_at is None


def test_missing_output_expiries_are_rebuilt_from_the_run_end_before_purging(run):
    long_done = ValidationOutputFactory(run=ended_run(8 * 24 * 60 * MINUTE), expires_at=None)
    recent = ValidationOutputFactory(run=ended_run(60 * MINUTE), expires_at=None)
    never_ended = ValidationOutputFactory(
        run=ValidationRunFactory(status=RunStatus.FAILED, finished_at=None), expires_at=None
    )

    result = run("purge_expired_outputs")

    assert result.counts["purged"] == 1
    assert fresh(long_done).content_purged_at == NOW
    assert fresh(recent).expires_at == recent.run.finished_at + timedelta(days=7)
    assert recent.content_purged_at is None
    assert fresh(never_ended).expires_at is None, "no end time: nothing to count from"


def test_submission_deadlines_are_recomputed_from_the_latest_terminal_run(run):
    missing = SubmissionFactory(retention_policy=RetentionPolicy.DAYS_1)
    Submission.objects.filter(pk=missing.pk).update(expires_at=None)
    ValidationRunFactory(submission=missing, finished_at=NOW - 3 * 24 * 60 * MINUTE)
    ValidationRunFactory(submission=missing, finished_at=NOW - 2 * 60 * MINUTE)
    dns_late = SubmissionFactory(retention_policy=DNS, expires_at=NOW + timedelta(days=7))
    ValidationRunFactory(submission=dns_late, finished_at=NOW - MINUTE)
    dns_busy = SubmissionFactory(retention_policy=DNS, expires_at=NOW + timedelta(days=7))
    ValidationRunFactory(submission=dns_busy, finished_at=NOW - MINUTE)
    ValidationRunFactory(submission=dns_busy, status=RunStatus.RUNNING)

    result = run("purge_expired_submissions")

    assert "repaired 2 submission deadline(s)" in result.stdout
    assert fresh(missing).expires_at == NOW - 2 * 60 * MINUTE + timedelta(days=1)
    assert missing.content_purged_at is None
    assert fresh(dns_late).content_purged_at == NOW
    assert fresh(dns_busy).expires_at == NOW + timedelta(days=7)


def test_dry_run_repairs_nothing_but_says_what_it_would(run):
    output = ValidationOutputFactory(run=ended_run(5 * MINUTE, DNS))
    before = output.expires_at

    result = run("purge_expired_outputs", "--dry-run")

    assert "would repair 1 output deadline(s)" in result.stdout
    assert fresh(output).expires_at == before


def test_missing_retry_rows_are_created_for_do_not_store_submissions(run, storage):
    finished = SubmissionFactory(retention_policy=DNS, expires_at=NOW + timedelta(days=1))
    ValidationRunFactory(submission=finished, finished_at=NOW - MINUTE)
    still_running = SubmissionFactory(retention_policy=DNS)
    ValidationRunFactory(submission=still_running, status=RunStatus.PENDING)
    no_run_old = SubmissionFactory(retention_policy=DNS, created_at=NOW - 60 * MINUTE)
    no_run_new = SubmissionFactory(
        retention_policy=DNS, created_at=NOW - 60 * MINUTE + timedelta(microseconds=1)
    )
    other_policy = SubmissionFactory(retention_policy=RetentionPolicy.DAYS_1)
    ValidationRunFactory(submission=other_policy, finished_at=NOW - MINUTE)
    already_queued = PurgeRetryFactory(
        submission=SubmissionFactory(retention_policy=DNS),
        next_retry_at=NOW + 10 * MINUTE,
    )

    result = run("process_purge_retries")

    assert "repaired 2 missing do-not-store retr(y/ies)" in result.stdout
    assert result.counts["succeeded"] == 2
    for row in (finished, no_run_old):
        assert fresh(row).content_purged_at == NOW
    for row in (still_running, no_run_new, other_policy):
        assert fresh(row).content_purged_at is None
    assert list(PurgeRetry.objects.values_list("pk", flat=True)) == [already_queued.pk]
    assert run("process_purge_retries").counts["succeeded"] == 0, "idempotent"


def test_a_busy_retry_is_deferred_five_minutes_whatever_the_backoff_base(run, settings):
    settings.VALIDIBOT_PURGE_RETRY_BASE_SECONDS = 7
    retry = PurgeRetryFactory()
    ValidationRunFactory(submission=retry.submission, status=RunStatus.RUNNING)

    assert run("process_purge_retries").counts["deferred"] == 1
    assert fresh(retry).next_retry_at == NOW + 5 * MINUTE


def test_retry_rows_are_unique_per_submission():
    from django.db import IntegrityError, transaction

    retry = PurgeRetryFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        PurgeRetryFactory(submission=retry.submission)
    assert PurgeRetry.objects.filter(submission=retry.submission).count() == 1


def test_repair_passes_use_the_shared_batch_loop_and_stop_between_chunks(monkeypatch):
    """A stop request between two chunks leaves the first chunk committed and the rest alone
    (the repair passes run before the purges inside the same stoppable command)."""
    from validibot.core.batches import StopRequested
    from validibot.retention import repair

    monkeypatch.setattr(repair, "CHUNK", 2)
    outputs = [
        ValidationOutputFactory(run=ended_run(8 * 24 * 60 * MINUTE), expires_at=None)
        for _ in range(5)
    ]
    asked = []

    def stop_after_first_chunk() -> str | None:
        asked.append(1)
        return "run canceled" if len(asked) > 1 else None

    with pytest.raises(StopRequested, match="run canceled"):
        repair.repair_output_deadlines(should_stop=stop_after_first_chunk)

    repaired = [fresh(output).expires_at is not None for output in outputs]
    assert repaired.count(True) == 2, repaired
