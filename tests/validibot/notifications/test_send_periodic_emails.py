"""send_periodic_emails: a no-op that says so without handlers; runs registered handlers."""

from __future__ import annotations

import io
from datetime import datetime
from typing import TextIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.validibot.conftest import NOW
from validibot.core.maintenance import parse_summary
from validibot.notifications.periodic_emails import (
    get_periodic_email_handlers,
    register_periodic_email_handler,
    unregister_periodic_email_handler,
)

pytestmark = pytest.mark.django_db


class DigestHandler:
    """A downstream handler: mails each recipient unless it is a dry run, and records calls."""

    def __init__(self, recipients: list[str], log: list[str] | None = None) -> None:
        self.recipients = recipients
        self.calls: list[tuple[datetime, bool]] = []
        self.log = log if log is not None else []

    def __call__(self, *, stdout: TextIO, now: datetime, dry_run: bool) -> int:
        self.calls.append((now, dry_run))
        self.log.append(f"digest:{len(self.recipients)}")
        if not dry_run:
            for address in self.recipients:
                mail.send_mail("Weekly digest", "Your validations", None, [address])
        stdout.write(f"digest for {len(self.recipients)} recipient(s)")
        return len(self.recipients)


def failing_handler(*, stdout: TextIO, now: datetime, dry_run: bool) -> int:
    raise ConnectionError("SMTP server refused the connection")


def test_without_handlers_it_does_nothing_and_says_so(run):
    result = run("send_periodic_emails")

    assert result.summary["status"] == "completed"
    assert result.counts == {"handlers": 0, "sent": 0, "handler_errors": 0}
    assert "No periodic email handlers registered; nothing to do." in result.stdout
    assert mail.outbox == []


def test_registered_handler_sends(run):
    handler = DigestHandler(["a@example.com", "b@example.com"])
    register_periodic_email_handler("digest", handler)

    result = run("send_periodic_emails")

    assert result.counts == {"handlers": 1, "sent": 2, "handler_errors": 0}
    assert sorted(message.to[0] for message in mail.outbox) == ["a@example.com", "b@example.com"]
    assert handler.calls == [(NOW, False)]
    assert "digest: sent 2" in result.stdout
    assert "digest for 2 recipient(s)" in result.stdout


def test_dry_run_sends_nothing(run):
    handler = DigestHandler(["a@example.com"])
    register_periodic_email_handler("digest", handler)

    result = run("send_periodic_emails", "--dry-run")

    assert result.counts == {"handlers": 1, "sent": 1, "handler_errors": 0}
    assert "digest: would send 1" in result.stdout
    assert handler.calls == [(NOW, True)]
    assert mail.outbox == []


def test_handlers_run_in_registration_order(run):
    log: list[str] = []
    register_periodic_email_handler("second", DigestHandler(["a@x.test", "b@x.test"], log))
    register_periodic_email_handler("first", DigestHandler(["c@x.test"], log))

    run("send_periodic_emails")

    assert log == ["digest:2", "digest:1"]
    assert [name for name, _ in get_periodic_email_handlers()] == ["second", "first"]


def test_a_failing_handler_does_not_stop_the_others_but_fails_the_command():
    register_periodic_email_handler("broken", failing_handler)
    register_periodic_email_handler("digest", DigestHandler(["a@example.com"]))
    out = io.StringIO()

    with pytest.raises(CommandError, match="send_periodic_emails failed: broken: ConnectionError"):
        call_command("send_periodic_emails", stdout=out, stderr=io.StringIO())

    summary = parse_summary(out.getvalue())
    assert summary["status"] == "failed"
    assert summary["counts"] == {"handlers": 2, "sent": 1, "handler_errors": 1}
    assert "SMTP server refused" in summary["error"]
    assert len(mail.outbox) == 1


def test_handler_registration_rules():
    handler = DigestHandler([])
    register_periodic_email_handler("digest", handler)
    register_periodic_email_handler("digest", handler)  # the same handler again: harmless
    assert len(get_periodic_email_handlers()) == 1

    with pytest.raises(ValueError, match="'digest' is already registered"):
        register_periodic_email_handler("digest", DigestHandler([]))
    with pytest.raises(TypeError, match="not callable"):
        register_periodic_email_handler("bad", "not a function")

    unregister_periodic_email_handler("digest")
    assert get_periodic_email_handlers() == []
