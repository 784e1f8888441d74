"""Outcome queries against real rows: the figure each check reports, read-only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import DatabaseError
from django.utils import timezone

from tests.factories import (
    AuditLogEntryFactory,
    CallbackReceiptFactory,
    IdempotencyKeyFactory,
    PurgeRetryFactory,
    SessionFactory,
    SubmissionFactory,
    ValidationOutputFactory,
    ValidationRunContinuationFactory,
    ValidationRunFactory,
)
from validibot.core.outcomes import OutcomeQueryError, read_only, run_outcome_query
from validibot.submissions.models import Submission
from validibot.tasks.outcomes import ERROR, PASS, WARN, OutcomeFigure, judge
from validibot.tasks.registry import get_task, get_tasks
from validibot.validations.models import RunStatus

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)


def _figure(task_id: str, check_name: str, now, *, grace: timedelta | None = None):
    check = next(c for c in get_task(task_id).outcome_checks if c.name == check_name)
    grace = timedelta(seconds=check.grace_seconds) if grace is None else grace
    return check, run_outcome_query(check.query, now, grace)


@pytest.mark.parametrize(
    "check",
    [c for t in get_tasks() for c in t.outcome_checks],
    ids=lambda c: c.query.rsplit(".", 1)[-1],
)
def test_every_declared_query_runs_on_an_empty_database(check):
    figure = run_outcome_query(check.query, timezone.now(), timedelta(seconds=check.grace_seconds))
    assert figure == OutcomeFigure(count=0, oldest_overdue_seconds=0.0)
    assert judge(check, figure) == PASS


def test_expired_submissions_count_only_rows_still_holding_data_past_the_grace():
    now = timezone.now()
    SubmissionFactory(expires_at=now - 5 * HOUR)  # overdue by 3 h past the 2 h grace
    SubmissionFactory(expires_at=now - 3 * HOUR, file="")  # content only: still offends
    SubmissionFactory(expires_at=now - HOUR)  # within the grace
    SubmissionFactory(expires_at=now - 9 * HOUR, content_purged_at=now)  # purged
    SubmissionFactory(expires_at=now - 9 * HOUR, content="", file="")  # holds nothing
    PurgeRetryFactory(submission=SubmissionFactory(expires_at=now - 9 * HOUR))  # the retries'
    check, figure = _figure("purge_expired_submissions", "expired_content_kept", now)
    assert figure.count == 2
    assert figure.oldest_overdue_hours == pytest.approx(3.0, abs=0.01)
    assert judge(check, figure) == WARN
    _, later = _figure("purge_expired_submissions", "expired_content_kept", now + 22 * HOUR)
    assert later.oldest_overdue_hours == pytest.approx(25.0, abs=0.01)
    assert judge(check, later) == ERROR


def test_expired_outputs_past_the_grace():
    now = timezone.now()
    ValidationOutputFactory(expires_at=now - 2 * HOUR)
    ValidationOutputFactory(expires_at=now - timedelta(minutes=10))
    check, figure = _figure("purge_expired_outputs", "expired_content_kept", now)
    assert figure.count == 1
    assert figure.oldest_overdue_hours == pytest.approx(1.5, abs=0.01)
    assert judge(check, figure) == WARN


def test_stuck_runs_use_their_own_deadline_else_the_site_wide_timeout(settings):
    settings.VALIDATOR_TIMEOUT_SECONDS = 3600
    now = timezone.now()
    running = RunStatus.RUNNING
    ValidationRunFactory(status=running, started_at=now - 3 * HOUR)  # stuck: 1h40 past
    ValidationRunFactory(status=running, started_at=now - 3 * HOUR, heartbeat_at=now)  # alive
    ValidationRunFactory(status=running, started_at=now, timeout_at=now - HOUR)  # own deadline
    ValidationRunFactory(status=running, started_at=now - 5 * HOUR, timeout_at=now + HOUR)
    ValidationRunFactory(status=RunStatus.PENDING, created_at=now - 2 * HOUR)  # never started
    ValidationRunFactory(status=RunStatus.SUCCEEDED, started_at=now - 9 * HOUR)  # terminal
    repairing = ValidationRunContinuationFactory(run__started_at=now - 9 * HOUR).run  # repair's
    ValidationRunContinuationFactory(  # given up: back to the timeout sweep
        run__started_at=now - 2 * HOUR - HOUR / 3, closed_at=now, closed_reason="gave_up"
    )
    assert repairing.status == running
    check, figure = _figure("cleanup_stuck_runs", "stuck_runs", now)
    assert figure.count == 4
    assert figure.oldest_overdue_hours == pytest.approx(5 / 3, abs=0.01)
    assert judge(check, figure) == WARN


def test_retries_over_the_alert_threshold_and_overdue_retries(settings):
    settings.VALIDIBOT_PURGE_RETRY_ALERT_ATTEMPTS = 5
    now = timezone.now()
    PurgeRetryFactory(attempts=5, next_retry_at=now + HOUR)
    PurgeRetryFactory(attempts=9, next_retry_at=now - 2 * HOUR)
    PurgeRetryFactory(attempts=1, next_retry_at=now)
    check, over = _figure("process_purge_retries", "retries_over_threshold", now)
    assert over.count == 2
    assert judge(check, over) == WARN
    check, overdue = _figure("process_purge_retries", "retries_overdue", now)
    assert overdue.count == 1
    assert overdue.oldest_overdue_hours == pytest.approx(1.5, abs=0.01)


def test_expired_keys_receipts_sessions_and_audit_entries(settings):
    settings.VALIDIBOT_CALLBACK_RECEIPT_RETENTION_DAYS = 30
    settings.AUDIT_HOT_RETENTION_DAYS = 90
    now = timezone.now()
    day = timedelta(days=1)
    IdempotencyKeyFactory(expires_at=now - 2 * day)
    IdempotencyKeyFactory(expires_at=now - HOUR)
    CallbackReceiptFactory(received_at=now - 40 * day)
    CallbackReceiptFactory(received_at=now - 31 * day)
    SessionFactory(expire_date=now - 3 * day)
    SessionFactory(expire_date=now - HOUR)
    AuditLogEntryFactory(timestamp=now - 95 * day)
    AuditLogEntryFactory(timestamp=now - 90 * day - HOUR)
    expected = {
        ("cleanup_idempotency_keys", "expired_rows_kept"): 23,
        ("cleanup_callback_receipts", "expired_rows_kept"): 2 * 24,
        ("clear_sessions", "expired_rows_kept"): 47,
        ("enforce_audit_retention", "entries_past_retention"): 4 * 24 - 1,
    }
    for (task_id, name), hours in expected.items():
        _, figure = _figure(task_id, name, now)
        assert figure.count == 1, task_id
        assert figure.oldest_overdue_hours == pytest.approx(hours, abs=0.01), task_id


def test_a_query_runs_in_a_transaction_that_refuses_writes():
    with pytest.raises(DatabaseError), read_only():
        Submission.objects.create(name="written by a check")
    assert not Submission.objects.exists()
    Submission.objects.create(name="outside the check")  # the connection is writable again
    assert Submission.objects.count() == 1


def broken_query(now, grace):
    raise RuntimeError("relation submissions_submission does not exist")


def not_a_figure(now, grace):
    return 3


def test_a_missing_or_wrong_query_names_the_path():
    with pytest.raises(OutcomeQueryError, match="validibot.nowhere.query"):
        run_outcome_query("validibot.nowhere.query", timezone.now(), HOUR)
    with pytest.raises(OutcomeQueryError, match="returned int"):
        run_outcome_query(f"{__name__}.not_a_figure", timezone.now(), HOUR)
    with pytest.raises(RuntimeError, match="does not exist"):
        run_outcome_query(f"{__name__}.broken_query", timezone.now(), HOUR)


def test_an_invalid_setting_fails_the_query_naming_the_variable(settings):
    from validibot.core.settings_check import InvalidSetting, SettingsError

    name = "VALIDIBOT_PURGE_RETRY_ALERT_ATTEMPTS"
    settings.VALIDIBOT_PURGE_RETRY_ALERT_ATTEMPTS = InvalidSetting(name, f"{name}='x' is invalid")
    with pytest.raises(SettingsError, match=name):
        _figure("process_purge_retries", "retries_over_threshold", timezone.now())
