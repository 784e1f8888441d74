"""run_task_command: summaries, extra args, failures."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TextIO

import pytest

from tests.factories import SubmissionFactory, ValidationRunFactory
from tests.validibot.conftest import NOW
from validibot.core.runner import TaskFailed, run_task_command
from validibot.notifications.periodic_emails import register_periodic_email_handler
from validibot.validations.models import RunStatus, ValidationRun

pytestmark = pytest.mark.django_db


def test_runs_the_command_and_returns_its_summary():
    submission = SubmissionFactory(expires_at=NOW - timedelta(hours=1))

    result = run_task_command("purge_expired_submissions")

    assert result["status"] == "completed"
    assert result["counts"]["purged"] == 1
    submission.refresh_from_db()
    assert submission.content_purged_at == NOW


def test_passes_extra_arguments():
    run = ValidationRunFactory(status=RunStatus.RUNNING, started_at=NOW - timedelta(hours=2))

    result = run_task_command("cleanup_stuck_runs", ["--dry-run", "--timeout-minutes=60"])

    assert (result["dry_run"], result["counts"]["timed_out"]) == (True, 1)
    assert ValidationRun.objects.get(pk=run.pk).status == RunStatus.RUNNING


def test_bad_arguments_raise_task_failed_naming_the_task():
    run = ValidationRunFactory(status=RunStatus.RUNNING, started_at=NOW - timedelta(hours=2))

    with pytest.raises(TaskFailed, match=r"'cleanup_stuck_runs' \(cleanup_stuck_runs\).*"):
        run_task_command("cleanup_stuck_runs", ["--timeout-minutes=0"])

    assert ValidationRun.objects.get(pk=run.pk).status == RunStatus.RUNNING


def test_unknown_task_id():
    with pytest.raises(KeyError, match="no scheduled task with id 'no_such_task'"):
        run_task_command("no_such_task")


def test_a_task_that_fails_after_starting_returns_a_failed_summary():
    def broken(*, stdout: TextIO, now: datetime, dry_run: bool) -> int:
        raise RuntimeError("template missing")

    register_periodic_email_handler("broken", broken)
    stderr_lines: list[str] = []

    result = run_task_command("send_periodic_emails", on_stderr=stderr_lines.append)

    assert result["status"] == "failed"
    assert "template missing" in result["error"]
    assert result["counts"]["handler_errors"] == 1


def test_output_streams_line_by_line():
    SubmissionFactory(expires_at=NOW)
    lines: list[str] = []

    summary = run_task_command("purge_expired_submissions", on_stdout=lines.append)

    assert lines[0].startswith("batch 1: purged 1")
    assert lines[-1].startswith('{"task": "purge_expired_submissions"')
    assert summary["counts"]["purged"] == 1
