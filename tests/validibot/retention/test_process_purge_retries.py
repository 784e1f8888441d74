"""process_purge_retries: due selection, success, backoff, the alert threshold, batches."""

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
from validibot.retention.services import retry_delay
from validibot.validations.models import RunStatus

pytestmark = pytest.mark.django_db

ZERO = {"succeeded": 0, "already_purged": 0, "deferred": 0, "failed": 0, "over_threshold": 0}


def counts(**nonzero: int) -> dict[str, int]:
    return {**ZERO, **nonzero}


@pytest.mark.parametrize(
    ("attempts", "seconds"),
    [(1, 300), (2, 600), (3, 1200), (4, 2400), (5, 3600), (6, 3600), (50, 3600)],
)
def test_backoff_is_exponential_and_capped(attempts, seconds):
    assert retry_delay(attempts) == timedelta(seconds=seconds)


def test_backoff_follows_settings(settings):
    settings.VALIDIBOT_PURGE_RETRY_BASE_SECONDS = 10
    settings.VALIDIBOT_PURGE_RETRY_MAX_SECONDS = 50
    assert [retry_delay(n).total_seconds() for n in range(1, 6)] == [10, 20, 40, 50, 50]


def test_due_retries_succeed_and_future_ones_wait(run):
    due = PurgeRetryFactory(next_retry_at=NOW - timedelta(minutes=1))
    at_now = PurgeRetryFactory(next_retry_at=NOW)
    future = PurgeRetryFactory(next_retry_at=NOW + timedelta(microseconds=1))
    files = {r.pk: r.submission.file.name for r in (due, at_now, future)}

    result = run("process_purge_retries")

    assert result.counts == counts(succeeded=2)
    for retry in (due, at_now):
        submission = retry.submission
        submission.refresh_from_db()
        assert (submission.content, submission.file.name) == ("", "")
        assert submission.content_purged_at == NOW
        assert not default_storage.exists(files[retry.pk])
    assert list(PurgeRetry.objects.values_list("pk", flat=True)) == [future.pk]
    future.submission.refresh_from_db()
    assert future.submission.content_purged_at is None
    assert default_storage.exists(files[future.pk])


def test_output_retries_are_processed_too(run):
    output = ValidationOutputFactory(expires_at=NOW - timedelta(hours=1))
    PurgeRetryFactory(submission=None, output=output)

    assert run("process_purge_retries").counts == counts(succeeded=1)

    output.refresh_from_db()
    assert output.content_purged_at == NOW
    assert not PurgeRetry.objects.exists()


def test_retry_of_an_already_purged_row_is_dropped(run, storage):
    submission = SubmissionFactory(content="", file="", content_purged_at=NOW - timedelta(days=1))
    PurgeRetryFactory(submission=submission)

    assert run("process_purge_retries").counts == counts(already_purged=1)

    assert not PurgeRetry.objects.exists()
    submission.refresh_from_db()
    assert submission.content_purged_at == NOW - timedelta(days=1)
    assert storage.attempted == []


@pytest.mark.parametrize("status", [RunStatus.PENDING, RunStatus.RUNNING])
def test_busy_row_is_deferred_without_counting_an_attempt(run, storage, status):
    retry = PurgeRetryFactory(attempts=3)
    ValidationRunFactory(submission=retry.submission, status=status)

    assert run("process_purge_retries").counts == counts(deferred=1)

    retry.refresh_from_db()
    assert retry.attempts == 3
    assert retry.next_retry_at == NOW + retry_delay(1)
    assert storage.attempted == []


def test_failure_records_the_error_and_backs_off(run, storage):
    retry = PurgeRetryFactory(attempts=1)
    storage.fail_for(retry.submission.file.name)

    result = run("process_purge_retries")

    assert result.summary["status"] == "completed"
    assert result.counts == counts(failed=1)
    retry.refresh_from_db()
    assert retry.attempts == 2
    assert retry.next_retry_at == NOW + timedelta(seconds=600)
    assert retry.last_error.startswith("OSError: storage unavailable")
    retry.submission.refresh_from_db()
    assert retry.submission.content_purged_at is None
    assert result.stderr == ""


def test_past_the_alert_threshold_it_is_reported_and_keeps_retrying(run, storage, settings, clock):
    # Privacy-critical deletion is never abandoned (upstream's stance, docs/upstream facts):
    # the threshold triggers the report; retries go on at the capped interval.
    threshold = settings.VALIDIBOT_PURGE_RETRY_ALERT_ATTEMPTS
    retry = PurgeRetryFactory(attempts=threshold - 1)
    PurgeRetryFactory(attempts=1)  # healthy: succeeds, never reported
    storage.fail_for(retry.submission.file.name)

    result = run("process_purge_retries")

    assert result.counts == counts(succeeded=1, failed=1, over_threshold=1)
    assert f"1 purge retr(y/ies) failed {threshold}+ times" in result.stderr
    retry.refresh_from_db()
    assert retry.attempts == threshold
    assert retry.next_retry_at == NOW + timedelta(
        seconds=settings.VALIDIBOT_PURGE_RETRY_MAX_SECONDS
    )

    # Still reported while it waits, and retried (not abandoned) once it is due again.
    assert run("process_purge_retries").counts == counts(over_threshold=1)
    storage.heal()
    clock.now = retry.next_retry_at
    final = run("process_purge_retries")
    assert final.counts == counts(succeeded=1)
    assert final.stderr == ""
    assert not PurgeRetry.objects.exists()


def test_dry_run_changes_nothing(run, storage):
    retries = [PurgeRetryFactory() for _ in range(3)]
    PurgeRetryFactory(next_retry_at=NOW + timedelta(hours=1))
    before = list(PurgeRetry.objects.order_by("pk").values())

    result = run("process_purge_retries", "--dry-run")

    assert result.summary["dry_run"] is True
    assert result.counts["succeeded"] == len(retries)
    assert "dry run: would retry 3 purge(s)" in result.stdout
    assert list(PurgeRetry.objects.order_by("pk").values()) == before
    assert storage.attempted == []


def test_second_run_is_a_no_op(run, storage):
    for _ in range(3):
        PurgeRetryFactory()
    run("process_purge_retries")
    attempted = len(storage.attempted)

    assert run("process_purge_retries").counts == ZERO
    assert len(storage.attempted) == attempted


def test_batch_limits_hold(run):
    for _ in range(5):
        PurgeRetryFactory()

    first = run("process_purge_retries", "--batch-size=2", "--max-batches=2")

    assert first.counts["succeeded"] == 4
    assert "batch 3" not in first.stdout
    assert PurgeRetry.objects.count() == 1
    assert run("process_purge_retries", "--batch-size=2").counts["succeeded"] == 1


def test_batch_size_default_comes_from_settings(run, settings):
    settings.VALIDIBOT_PURGE_RETRY_BATCH_SIZE = 2
    for _ in range(3):
        PurgeRetryFactory()

    result = run("process_purge_retries", "--max-batches=1")

    assert result.counts["succeeded"] == 2


def test_failed_purge_is_finished_by_the_retry_once_storage_heals(run, storage, clock):
    submission = SubmissionFactory(expires_at=NOW - timedelta(hours=1))
    name = submission.file.name
    storage.fail_for(name)
    run("purge_expired_submissions")
    storage.heal()

    # Not due yet: backoff holds.
    assert run("process_purge_retries").counts == ZERO

    due_at = clock.now = PurgeRetry.objects.get().next_retry_at
    result = run("process_purge_retries")

    assert result.counts == counts(succeeded=1)
    submission.refresh_from_db()
    assert (submission.content, submission.file.name) == ("", "")
    assert submission.content_purged_at == due_at
    assert not default_storage.exists(name)
    assert not PurgeRetry.objects.exists()
