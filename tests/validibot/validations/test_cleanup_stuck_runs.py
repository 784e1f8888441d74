"""cleanup_stuck_runs: the heartbeat-aware threshold, dry run, batches, the timeout option."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management.base import CommandError

from tests.factories import ValidationRunFactory
from tests.validibot.conftest import NOW
from validibot.tasks.registry import get_task
from validibot.validations.models import RunStatus, ValidationRun

pytestmark = pytest.mark.django_db

MINUTE = timedelta(minutes=1)
EPSILON = timedelta(microseconds=1)
SCHEDULED_ARGS = get_task("cleanup_stuck_runs").args


def running(started_ago: timedelta, heartbeat_ago: timedelta | None = None, **fields):
    return ValidationRunFactory(
        status=RunStatus.RUNNING,
        started_at=NOW - started_ago,
        heartbeat_at=None if heartbeat_ago is None else NOW - heartbeat_ago,
        **fields,
    )


def status_of(run: ValidationRun) -> str:
    run.refresh_from_db()
    return run.status


def test_threshold_is_heartbeat_aware_with_the_scheduled_timeout(run):
    stuck = running(30 * MINUTE + EPSILON)
    stuck_old_heartbeat = running(3 * 60 * MINUTE, heartbeat_ago=30 * MINUTE + EPSILON)
    at_threshold = running(30 * MINUTE)
    recent = running(29 * MINUTE)
    alive = running(3 * 60 * MINUTE, heartbeat_ago=5 * MINUTE)
    heartbeat_at_threshold = running(3 * 60 * MINUTE, heartbeat_ago=30 * MINUTE)
    old_others = [
        ValidationRunFactory(status=status, started_at=NOW - 5 * 60 * MINUTE)
        for status in RunStatus
        if status != RunStatus.RUNNING
    ]

    result = run("cleanup_stuck_runs", *SCHEDULED_ARGS)

    assert result.counts["timed_out"] == 2
    for row in (stuck, stuck_old_heartbeat):
        row.refresh_from_db()
        assert row.status == RunStatus.TIMED_OUT
        assert row.finished_at == NOW
        assert "no callback or heartbeat received" in row.error
        assert "30 minutes" in row.error
    for row in (at_threshold, recent, alive, heartbeat_at_threshold):
        assert status_of(row) == RunStatus.RUNNING
    for row in old_others:
        before = row.status
        assert status_of(row) == before
        assert row.error == ""


def test_timeout_option_and_setting(run, settings):
    run_45 = running(45 * MINUTE)
    run_90 = running(90 * MINUTE)

    assert run("cleanup_stuck_runs", "--timeout-minutes=60").counts["timed_out"] == 1
    assert status_of(run_45) == RunStatus.RUNNING
    assert status_of(run_90) == RunStatus.TIMED_OUT
    assert "60 minutes" in ValidationRun.objects.get(pk=run_90.pk).error

    settings.VALIDATOR_TIMEOUT_SECONDS = 40 * 60
    assert run("cleanup_stuck_runs").counts["timed_out"] == 1
    assert status_of(run_45) == RunStatus.TIMED_OUT


def test_the_default_is_the_validator_timeout_and_the_schedule_passes_30_minutes(run):
    assert SCHEDULED_ARGS == ("--timeout-minutes=30",)
    run_45 = running(45 * MINUTE)
    run_61 = running(61 * MINUTE)

    assert run("cleanup_stuck_runs").counts["timed_out"] == 1  # VALIDATOR_TIMEOUT_SECONDS
    assert (status_of(run_45), status_of(run_61)) == (RunStatus.RUNNING, RunStatus.TIMED_OUT)
    assert run("cleanup_stuck_runs", *SCHEDULED_ARGS).counts["timed_out"] == 1
    assert status_of(run_45) == RunStatus.TIMED_OUT


def test_a_too_small_validator_timeout_is_refused(run, settings):
    settings.VALIDATOR_TIMEOUT_SECONDS = 30
    row = running(5 * 60 * MINUTE)
    with pytest.raises(CommandError, match="VALIDATOR_TIMEOUT_SECONDS=30"):
        run("cleanup_stuck_runs")
    assert status_of(row) == RunStatus.RUNNING


def test_a_runs_own_timeout_at_overrides_the_site_wide_cutoff(run):
    # Its own deadline passed, though far younger than the site-wide 30 minutes.
    short_deadline = running(5 * MINUTE, timeout_at=NOW - EPSILON)
    # Far older than 30 minutes, but its own deadline is still ahead.
    long_deadline = running(3 * 60 * MINUTE, timeout_at=NOW + MINUTE)
    at_deadline = running(3 * 60 * MINUTE, timeout_at=NOW)
    # A fresh heartbeat does not extend an explicit deadline.
    heartbeat_past_deadline = running(
        40 * MINUTE, heartbeat_ago=MINUTE, timeout_at=NOW - 5 * MINUTE
    )
    site_wide = running(31 * MINUTE)

    assert run("cleanup_stuck_runs", *SCHEDULED_ARGS, "--dry-run").counts["timed_out"] == 3
    result = run("cleanup_stuck_runs", *SCHEDULED_ARGS)

    assert result.counts["timed_out"] == 3
    for row in (short_deadline, heartbeat_past_deadline):
        row.refresh_from_db()
        assert row.status == RunStatus.TIMED_OUT
        assert "this attempt's deadline" in row.error
        assert row.timeout_at.isoformat() in row.error
    assert status_of(site_wide) == RunStatus.TIMED_OUT
    assert "30 minutes" in ValidationRun.objects.get(pk=site_wide.pk).error
    assert status_of(long_deadline) == RunStatus.RUNNING
    assert status_of(at_deadline) == RunStatus.RUNNING


def test_dry_run_changes_nothing(run):
    rows = [running(2 * 60 * MINUTE) for _ in range(3)]
    before = list(ValidationRun.objects.order_by("pk").values())

    result = run("cleanup_stuck_runs", "--dry-run")

    assert result.summary["dry_run"] is True
    assert result.counts["timed_out"] == len(rows)
    assert "would time out 3 run(s)" in result.stdout
    assert list(ValidationRun.objects.order_by("pk").values()) == before


def test_second_run_is_a_no_op(run):
    for _ in range(3):
        running(2 * 60 * MINUTE)
    run("cleanup_stuck_runs")
    after_first = list(ValidationRun.objects.order_by("pk").values())

    assert run("cleanup_stuck_runs").counts["timed_out"] == 0
    assert list(ValidationRun.objects.order_by("pk").values()) == after_first


def test_batch_limits_hold(run):
    for _ in range(5):
        running(2 * 60 * MINUTE)
    still_running = ValidationRun.objects.filter(status=RunStatus.RUNNING)

    first = run("cleanup_stuck_runs", "--batch-size=2", "--max-batches=2")

    assert first.counts["timed_out"] == 4
    assert "batch 3" not in first.stdout
    assert still_running.count() == 1
    assert run("cleanup_stuck_runs", "--batch-size=2").counts["timed_out"] == 1
    assert still_running.count() == 0
    dry = run("cleanup_stuck_runs", "--dry-run", "--batch-size=2", "--max-batches=1")
    assert dry.counts["timed_out"] == 0
