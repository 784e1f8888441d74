"""factory_boy factories for the rows the maintenance commands act on.

Time defaults look up ``timezone.now`` when a row is built (hence the lambdas), so a test that
freezes the clock gets rows relative to its frozen ``now``.
"""

from __future__ import annotations

from datetime import timedelta

import factory
from django.contrib.sessions.models import Session
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from validibot.audit.models import AuditActor, AuditLogEntry
from validibot.idp.models import OIDCClient, OIDCToken
from validibot.operations.models import IdempotencyKey
from validibot.retention.models import PurgeRetry
from validibot.submissions.models import RetentionPolicy, Submission
from validibot.validations.models import (
    CallbackReceipt,
    RunStatus,
    ValidationOutput,
    ValidationRun,
    ValidationRunContinuation,
)


def stored_file(folder: str) -> str:
    """Write a small real file to the default storage and return its name."""
    return default_storage.save(f"{folder}/test.json", ContentFile(b'{"test": true}'))


class SubmissionFactory(factory.django.DjangoModelFactory):
    """A submission with inline content and a real stored file, expiring in a week."""

    class Meta:
        model = Submission

    name = factory.Sequence(lambda n: f"submission {n}")
    content = '{"payload": 1}'
    file = factory.LazyFunction(lambda: stored_file("submissions"))
    retention_policy = RetentionPolicy.DAYS_7
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=7))


class ValidationRunFactory(factory.django.DjangoModelFactory):
    """A finished (terminal) run over a fresh submission."""

    class Meta:
        model = ValidationRun

    submission = factory.SubFactory(SubmissionFactory)
    status = RunStatus.SUCCEEDED


class ValidationRunContinuationFactory(factory.django.DjangoModelFactory):
    """The open continuation of a running run whose callback just arrived (not dispatched)."""

    class Meta:
        model = ValidationRunContinuation

    run = factory.SubFactory(
        ValidationRunFactory,
        status=RunStatus.RUNNING,
        started_at=factory.LazyFunction(lambda: timezone.now() - timedelta(minutes=5)),
    )
    callback_received_at = factory.LazyFunction(timezone.now)


class ValidationOutputFactory(factory.django.DjangoModelFactory):
    """An output of a finished run, with content and a stored file, expiring in a day."""

    class Meta:
        model = ValidationOutput

    run = factory.SubFactory(ValidationRunFactory)
    name = factory.Sequence(lambda n: f"report-{n}.json")
    content = '{"findings": []}'
    file = factory.LazyFunction(lambda: stored_file("outputs"))
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=1))


class PurgeRetryFactory(factory.django.DjangoModelFactory):
    """A first-attempt retry for a submission, due now."""

    class Meta:
        model = PurgeRetry

    submission = factory.SubFactory(SubmissionFactory)
    output = None
    attempts = 1
    next_retry_at = factory.LazyFunction(lambda: timezone.now())
    last_error = "OSError: storage unavailable"


class IdempotencyKeyFactory(factory.django.DjangoModelFactory):
    """An idempotency key (expiry defaults to the model's 24-hour TTL)."""

    class Meta:
        model = IdempotencyKey

    key = factory.Sequence(lambda n: f"key-{n}")


class CallbackReceiptFactory(factory.django.DjangoModelFactory):
    """A validator callback receipt received now."""

    class Meta:
        model = CallbackReceipt

    callback_id = factory.Sequence(lambda n: f"callback-{n}")
    status = "succeeded"
    received_at = factory.LazyFunction(lambda: timezone.now())


class SessionFactory(factory.django.DjangoModelFactory):
    """A database session expiring in a day."""

    class Meta:
        model = Session

    session_key = factory.Sequence(lambda n: f"session{n:033d}")
    session_data = "e30:test"
    expire_date = factory.LazyFunction(lambda: timezone.now() + timedelta(days=1))


class AuditActorFactory(factory.django.DjangoModelFactory):
    """A user actor created long ago (older than any retention window the tests use)."""

    class Meta:
        model = AuditActor

    identifier = factory.Sequence(lambda n: f"user{n}@example.com")
    created_at = factory.LazyFunction(lambda: timezone.now() - timedelta(days=1000))


class AuditLogEntryFactory(factory.django.DjangoModelFactory):
    """An audit entry written now by a fresh actor."""

    class Meta:
        model = AuditLogEntry

    actor = factory.SubFactory(AuditActorFactory)
    action = "submission.viewed"
    target = factory.Sequence(lambda n: f"submission:{n}")
    timestamp = factory.LazyFunction(lambda: timezone.now())
    payload = factory.LazyFunction(lambda: {"ip": "192.0.2.1", "fields": ["name"]})


class OIDCClientFactory(factory.django.DjangoModelFactory):
    """A dynamically registered OIDC client created now, never used."""

    class Meta:
        model = OIDCClient

    client_id = factory.Sequence(lambda n: f"dcr-client-{n}")
    dynamically_registered = True
    created_at = factory.LazyFunction(timezone.now)


class OIDCTokenFactory(factory.django.DjangoModelFactory):
    """A live token (unrevoked, expiring in an hour) of a fresh client."""

    class Meta:
        model = OIDCToken

    client = factory.SubFactory(OIDCClientFactory)
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(hours=1))
