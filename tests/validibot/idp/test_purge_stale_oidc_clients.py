"""purge_stale_oidc_clients: which clients are stale, live tokens, retention, dry run, batches."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from tests.factories import OIDCClientFactory, OIDCTokenFactory
from tests.validibot.conftest import NOW
from validibot.core.outcomes import run_outcome_query
from validibot.idp.models import OIDCClient, OIDCToken
from validibot.tasks.outcomes import ERROR, judge
from validibot.tasks.registry import get_task

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
EPSILON = timedelta(microseconds=1)


def client(inactive_for: timedelta, *, used: bool = True, **fields) -> OIDCClient:
    """A DCR client last active ``inactive_for`` ago (through last_used_at, or its creation)."""
    if used:
        return OIDCClientFactory(
            created_at=NOW - inactive_for - 9 * DAY, last_used_at=NOW - inactive_for, **fields
        )
    return OIDCClientFactory(created_at=NOW - inactive_for, **fields)


def remaining() -> set[str]:
    return set(OIDCClient.objects.values_list("client_id", flat=True))


def test_only_inactive_dcr_clients_without_a_live_token_are_deleted(run):
    stale_used = client(30 * DAY + EPSILON, client_id="stale-used")
    client(31 * DAY, used=False, client_id="stale-never-used")
    dead = client(40 * DAY, client_id="stale-dead-tokens")
    OIDCTokenFactory(client=dead, expires_at=NOW - DAY)
    OIDCTokenFactory(client=dead, expires_at=NOW + DAY, revoked=True)
    OIDCTokenFactory(client=dead, expires_at=NOW)  # expires at this instant: not live
    held = client(40 * DAY, client_id="held")
    OIDCTokenFactory(client=held, expires_at=NOW + EPSILON)
    client(30 * DAY, client_id="at-the-boundary")
    client(2 * DAY, client_id="recent")
    client(400 * DAY, client_id="static", dynamically_registered=False)
    client(400 * DAY, used=False, client_id="old-but-used-lately", last_used_at=NOW - DAY)

    result = run("purge_stale_oidc_clients")

    assert "Deleted 3 inactive DCR client(s)." in result.stdout.splitlines()
    assert result.counts == {"deleted": 3, "tokens_deleted": 3, "kept_live_token": 1}
    assert remaining() == {"held", "at-the-boundary", "recent", "static", "old-but-used-lately"}
    assert not OIDCToken.objects.filter(client_id__in=[stale_used.pk, dead.pk]).exists()
    assert OIDCToken.objects.filter(client=held).count() == 1
    assert run("purge_stale_oidc_clients").counts["deleted"] == 0  # idempotent


def test_dry_run_reports_and_changes_nothing(run):
    for _ in range(3):
        client(45 * DAY)
    client(5 * DAY)

    result = run("purge_stale_oidc_clients", "--dry-run")

    assert "Would delete 3 inactive DCR client(s)." in result.stdout
    assert result.summary["dry_run"] is True
    assert result.counts["deleted"] == 3
    assert OIDCClient.objects.count() == 4


def test_retention_days_option_and_setting(run, settings):
    client(10 * DAY, client_id="ten")
    client(20 * DAY, client_id="twenty")
    settings.IDP_OIDC_DCR_INACTIVE_CLIENT_RETENTION_DAYS = 15

    assert run("purge_stale_oidc_clients", "--retention-days=25").counts["deleted"] == 0
    assert run("purge_stale_oidc_clients").counts["deleted"] == 1
    assert remaining() == {"ten"}
    assert run("purge_stale_oidc_clients", "--retention-days=1").counts["deleted"] == 1


@pytest.mark.parametrize("value", ["0", "-3"])
def test_retention_below_one_day_is_refused_before_anything_changes(value):
    client(90 * DAY)
    with pytest.raises(CommandError, match="--retention-days: must be a positive integer"):
        call_command("purge_stale_oidc_clients", f"--retention-days={value}")
    with pytest.raises(CommandError, match="--retention-days: must be a positive integer"):
        call_command("purge_stale_oidc_clients", retention_days=int(value))
    assert OIDCClient.objects.count() == 1


def test_batches_commit_one_by_one_and_max_batches_stops(run):
    for _ in range(5):
        client(60 * DAY)

    first = run("purge_stale_oidc_clients", "--batch-size=2", "--max-batches=2")

    assert first.counts["deleted"] == 4
    assert "batch 2: deleted 2 client(s)" in first.stdout
    assert "batch 3" not in first.stdout
    assert OIDCClient.objects.count() == 1


def test_the_outcome_check_sees_stale_clients_a_missed_run_left(settings):
    settings.IDP_OIDC_DCR_INACTIVE_CLIENT_RETENTION_DAYS = 30
    now = timezone.now()
    OIDCClientFactory(created_at=now - 34 * DAY)  # 4 days past: 71 h past the 25 h grace
    OIDCClientFactory(created_at=now - 31 * DAY)  # within the grace
    held = OIDCClientFactory(created_at=now - 90 * DAY)
    OIDCTokenFactory(client=held)
    OIDCClientFactory(created_at=now - 90 * DAY, dynamically_registered=False)
    [check] = get_task("purge_stale_oidc_clients").outcome_checks

    figure = run_outcome_query(check.query, now, timedelta(seconds=check.grace_seconds))

    assert figure.count == 1
    assert figure.oldest_overdue_hours == pytest.approx(71, abs=0.01)
    assert judge(check, figure) == ERROR
