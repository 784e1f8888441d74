"""purge_expired_submissions and purge_expired_outputs: selection, dry run, batches, failures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.db.models import Model

from tests.factories import (
    PurgeRetryFactory,
    SubmissionFactory,
    ValidationOutputFactory,
    ValidationRunFactory,
)
from tests.validibot.conftest import NOW
from validibot.retention.models import PurgeRetry
from validibot.submissions.models import Submission
from validibot.validations.models import NON_TERMINAL, RunStatus, ValidationOutput

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Kind:
    """One purge command and how to make a row it acts on."""

    command: str
    model: type[Model]
    retry_field: str
    make: Callable[..., Model]


def make_submission(expires_at, run_status=RunStatus.SUCCEEDED, **fields) -> Submission:
    submission = SubmissionFactory(expires_at=expires_at, **fields)
    ValidationRunFactory(submission=submission, status=run_status)
    return submission


def make_output(expires_at, run_status=RunStatus.SUCCEEDED, **fields) -> ValidationOutput:
    return ValidationOutputFactory(
        run=ValidationRunFactory(status=run_status), expires_at=expires_at, **fields
    )


KINDS = [
    Kind("purge_expired_submissions", Submission, "submission", make_submission),
    Kind("purge_expired_outputs", ValidationOutput, "output", make_output),
]


@pytest.fixture(params=KINDS, ids=[k.command for k in KINDS])
def kind(request) -> Kind:
    return request.param


def state(row: Model) -> tuple:
    """Everything a purge may change on a row, read fresh from the database."""
    row.refresh_from_db()
    return (row.content, row.file.name, row.content_purged_at)


def assert_purged(row: Model) -> None:
    old_name = row.file.name
    assert state(row) == ("", "", NOW)
    assert not default_storage.exists(old_name)


def assert_untouched(row: Model, before: tuple) -> None:
    assert state(row) == before
    if before[1]:
        assert default_storage.exists(before[1])


def test_selects_exactly_expired_rows_including_the_boundary(kind, run):
    past = kind.make(NOW - timedelta(seconds=1))
    at_now = kind.make(NOW)
    future = kind.make(NOW + timedelta(microseconds=1))
    already = kind.make(NOW - timedelta(days=1), content="", file="")
    kind.model._default_manager.filter(pk=already.pk).update(
        content_purged_at=NOW - timedelta(hours=1)
    )
    queued = kind.make(NOW - timedelta(hours=1))
    PurgeRetryFactory(**{"submission": None, kind.retry_field: queued})
    kept = {row.pk: state(row) for row in (future, already, queued)}

    result = run(kind.command)

    assert result.summary["status"] == "completed"
    assert result.counts == {"purged": 2, "failed": 0, "skipped_busy": 0, "batches": 1}
    assert_purged(past)
    assert_purged(at_now)
    for row in (future, already, queued):
        assert_untouched(row, kept[row.pk])
    assert kind.model._default_manager.count() == 5, "purging keeps the rows for audit"


@pytest.mark.parametrize("run_status", list(RunStatus))
def test_rows_with_an_active_run_wait(kind, run, run_status):
    row = kind.make(NOW - timedelta(hours=1), run_status=run_status)
    before = state(row)

    counts = run(kind.command).counts

    if run_status in NON_TERMINAL:
        assert counts["purged"] == 0
        assert counts["skipped_busy"] == 1
        assert_untouched(row, before)
    else:
        assert counts["purged"] == 1
        assert counts["skipped_busy"] == 0
        assert_purged(row)


def test_row_without_a_stored_file_is_purged_without_touching_storage(kind, run, storage):
    row = kind.make(NOW - timedelta(hours=1), file="")

    assert run(kind.command).counts["purged"] == 1

    assert state(row) == ("", "", NOW)
    assert storage.attempted == []


def test_dry_run_changes_nothing(kind, run, storage):
    rows = [kind.make(NOW - timedelta(minutes=i)) for i in range(3)]
    busy = kind.make(NOW - timedelta(hours=1), run_status=RunStatus.RUNNING)
    before = {row.pk: state(row) for row in [*rows, busy]}

    result = run(kind.command, "--dry-run")

    assert result.summary["dry_run"] is True
    assert result.counts["purged"] == 3
    assert result.counts["skipped_busy"] == 1
    assert "dry run: would purge 3" in result.stdout
    for row in [*rows, busy]:
        assert_untouched(row, before[row.pk])
    assert storage.attempted == []
    assert not PurgeRetry.objects.exists()


def test_dry_run_reports_no_more_than_the_batch_limits_allow(kind, run):
    for i in range(5):
        kind.make(NOW - timedelta(minutes=i))

    counts = run(kind.command, "--dry-run", "--batch-size=2", "--max-batches=1").counts

    assert counts["purged"] == 2


def test_second_run_is_a_no_op(kind, run, storage):
    rows = [kind.make(NOW - timedelta(minutes=i)) for i in range(3)]
    run(kind.command)
    after_first = {row.pk: state(row) for row in rows}
    attempts_after_first = len(storage.attempted)

    counts = run(kind.command).counts

    assert counts == {"purged": 0, "failed": 0, "skipped_busy": 0, "batches": 0}
    assert {row.pk: state(row) for row in rows} == after_first
    assert len(storage.attempted) == attempts_after_first


def test_batch_limits_hold_and_the_next_run_continues(kind, run):
    rows = [kind.make(NOW - timedelta(minutes=i)) for i in range(5)]
    unpurged = kind.model._default_manager.filter(content_purged_at__isnull=True)

    first = run(kind.command, "--batch-size=2", "--max-batches=2")

    assert first.counts["purged"] == 4
    assert first.counts["batches"] == 2
    assert "batch 2: purged 2" in first.stdout
    assert "batch 3" not in first.stdout
    assert unpurged.count() == 1

    second = run(kind.command, "--batch-size=2", "--max-batches=2")

    assert (second.counts["purged"], second.counts["batches"]) == (1, 1)
    assert unpurged.count() == 0
    assert {state(row) for row in rows} == {("", "", NOW)}


def test_max_batches_zero_means_until_nothing_is_left(kind, run):
    for i in range(5):
        kind.make(NOW - timedelta(minutes=i))

    counts = run(kind.command, "--batch-size=2", "--max-batches=0").counts

    assert (counts["purged"], counts["batches"]) == (5, 3)


def test_batch_defaults_come_from_settings(kind, run, settings):
    settings.VALIDIBOT_PURGE_BATCH_SIZE = 2
    settings.VALIDIBOT_PURGE_MAX_BATCHES = 1
    for i in range(5):
        kind.make(NOW - timedelta(minutes=i))

    counts = run(kind.command).counts

    assert (counts["purged"], counts["batches"]) == (2, 1)


def test_storage_failure_queues_a_retry_with_backoff(kind, run, storage, settings):
    settings.VALIDIBOT_PURGE_RETRY_BASE_SECONDS = 120
    good = [kind.make(NOW - timedelta(minutes=i)) for i in range(2)]
    bad = kind.make(NOW - timedelta(hours=1))
    bad_name = bad.file.name
    storage.fail_for(bad_name)

    result = run(kind.command)

    assert result.summary["status"] == "completed"
    assert (result.counts["purged"], result.counts["failed"]) == (2, 1)
    assert "queued for process_purge_retries" in result.stdout
    for row in good:
        assert_purged(row)
    # Privacy first: the inline content goes now; the file and the purge mark wait for the retry.
    assert state(bad) == ("", bad_name, None)
    assert default_storage.exists(bad_name)
    retry = PurgeRetry.objects.get()
    assert retry.target == bad
    assert retry.attempts == 1
    assert retry.next_retry_at == NOW + timedelta(seconds=120)
    assert retry.last_error.startswith("OSError:")
    assert bad_name in retry.last_error


def test_a_queued_row_is_left_to_the_retry_command(kind, run, storage):
    bad = kind.make(NOW - timedelta(hours=1))
    storage.fail_for(bad.file.name)
    run(kind.command)

    counts = run(kind.command).counts

    assert (counts["purged"], counts["failed"]) == (0, 0)
    assert storage.attempted.count(bad.file.name) == 1
    assert PurgeRetry.objects.get().attempts == 1
