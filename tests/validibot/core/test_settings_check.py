"""Settings checked once at start-up: a bad VALIDIBOT_* value fails only the tasks that read it.

Issue 15, D3/D4/D9: zero or negative retention, timeouts, backoff and max-batches, values that
are not numbers, a token map without ``=``, a bad time-limit or timezone variable. Each is
refused with a message naming the variable and its accepted range; no row changes; other
tasks, ``manage.py help`` and the web app keep working.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.core.management import CommandError, call_command
from django.db.models import Model

from tests.factories import (
    CallbackReceiptFactory,
    PurgeRetryFactory,
    SessionFactory,
    SubmissionFactory,
    ValidationRunFactory,
)
from tests.support.dagster_stack import REPO_ROOT
from tests.validibot.conftest import NOW
from validibot.core.settings_check import (
    BY_NAME,
    SETTINGS,
    check_environment,
    parse_token_map,
    task_settings,
)
from validibot.retention.models import PurgeRetry
from validibot.submissions.models import Submission
from validibot.tasks.registry import BUILTIN_TASKS
from validibot.validations.models import CallbackReceipt, RunStatus, ValidationRun

pytestmark = pytest.mark.django_db

MODELS: tuple[type[Model], ...] = (ValidationRun, Submission, CallbackReceipt, PurgeRetry, Session)


def snapshot() -> dict[str, list[tuple]]:
    """Every row of every table the tasks change, field by field."""
    return {m.__name__: sorted(m.objects.values_list(), key=repr) for m in MODELS}


@pytest.fixture
def environment(settings, monkeypatch):
    """``environment({"VAR": "value"})``: the settings Django would load from that environment
    (through the same start-up check), and the variables set for the Django-free registry."""

    def apply(environ: dict[str, str]) -> None:
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        checked = check_environment(os.environ)
        for name in environ:
            if hasattr(settings, name):
                setattr(settings, name, checked.env(name))
        settings.VALIDIBOT_SETTINGS_ERRORS = checked.errors

    return apply


@pytest.fixture
def rows(storage):
    """Rows each refused task would have changed had it run with the bad value."""
    return {
        "live_run": ValidationRunFactory(
            status=RunStatus.RUNNING, started_at=NOW - timedelta(minutes=5)
        ),
        "receipt": CallbackReceiptFactory(received_at=NOW - timedelta(days=1)),
        "expired": SubmissionFactory(expires_at=NOW - timedelta(days=1)),
        "retry": PurgeRetryFactory(next_retry_at=NOW - timedelta(minutes=1)),
        "session": SessionFactory(expire_date=NOW - timedelta(days=1)),
    }


# (variables, the task refused, the message it gives)
REFUSED = {
    "D3 stuck-run timeout 0": (
        {"VALIDATOR_TIMEOUT_SECONDS": "0"},
        "cleanup_stuck_runs",
        "VALIDATOR_TIMEOUT_SECONDS='0' is invalid: expected a whole number of "
        "seconds >= 60; default 3600",
    ),
    "D3 stuck-run timeout negative": (
        {"VALIDATOR_TIMEOUT_SECONDS": "-5"},
        "cleanup_stuck_runs",
        "VALIDATOR_TIMEOUT_SECONDS='-5' is invalid",
    ),
    "continuation execution deadline not past the dispatch one": (
        {
            "VALIDATION_CONTINUATION_DISPATCH_STALE_SECONDS": "900",
            "VALIDATION_CONTINUATION_EXECUTION_STALE_SECONDS": "900",
        },
        "cleanup_stuck_runs",
        "VALIDATION_CONTINUATION_EXECUTION_STALE_SECONDS=900 is invalid: must be greater than "
        "VALIDATION_CONTINUATION_DISPATCH_STALE_SECONDS=900",
    ),
    "callback processing deadline 0": (
        {"VALIDATION_CALLBACK_PROCESSING_STALE_SECONDS": "0"},
        "cleanup_stuck_runs",
        "VALIDATION_CALLBACK_PROCESSING_STALE_SECONDS='0' is invalid: expected a whole number "
        "of seconds >= 1; default 600",
    ),
    "D3 receipt retention 0": (
        {"VALIDIBOT_CALLBACK_RECEIPT_RETENTION_DAYS": "0"},
        "cleanup_callback_receipts",
        "VALIDIBOT_CALLBACK_RECEIPT_RETENTION_DAYS='0' is invalid: expected a whole number of "
        "days >= 1",
    ),
    "D4 retry backoff 0": (
        {"VALIDIBOT_PURGE_RETRY_BASE_SECONDS": "0"},
        "process_purge_retries",
        "VALIDIBOT_PURGE_RETRY_BASE_SECONDS='0' is invalid: expected a whole number of "
        "seconds >= 1",
    ),
    "D4 retry backoff 0 (purges schedule retries too)": (
        {"VALIDIBOT_PURGE_RETRY_BASE_SECONDS": "0"},
        "purge_expired_submissions",
        "VALIDIBOT_PURGE_RETRY_BASE_SECONDS='0' is invalid",
    ),
    "D4 retry cap below the base": (
        {"VALIDIBOT_PURGE_RETRY_MAX_SECONDS": "10"},
        "process_purge_retries",
        "VALIDIBOT_PURGE_RETRY_MAX_SECONDS=10 is invalid: must be >= "
        "VALIDIBOT_PURGE_RETRY_BASE_SECONDS=300",
    ),
    "D4 max batches -1": (
        {"VALIDIBOT_PURGE_MAX_BATCHES": "-1"},
        "purge_expired_submissions",
        "VALIDIBOT_PURGE_MAX_BATCHES='-1' is invalid: expected a whole number >= 0 "
        "(0 = until nothing is left)",
    ),
    "D9 batch size abc": (
        {"VALIDIBOT_PURGE_BATCH_SIZE": "abc"},
        "purge_expired_outputs",
        "VALIDIBOT_PURGE_BATCH_SIZE='abc' is invalid: expected a whole number >= 1; default 100",
    ),
    "D9 cleanup batch size 0": (
        {"VALIDIBOT_CLEANUP_BATCH_SIZE": "0"},
        "clear_sessions",
        "VALIDIBOT_CLEANUP_BATCH_SIZE='0' is invalid",
    ),
    "D9 time limit abc": (
        {"VALIDIBOT_TASK_HARD_TIME_LIMIT_SECONDS": "abc"},
        "clear_sessions",
        "VALIDIBOT_TASK_HARD_TIME_LIMIT_SECONDS='abc' is invalid: expected a whole number of "
        "seconds >= 1",
    ),
    "D9 soft limit above the hard one": (
        {"VALIDIBOT_TASK_SOFT_TIME_LIMIT_SECONDS": "4000"},
        "cleanup_callback_receipts",
        "VALIDIBOT_TASK_SOFT_TIME_LIMIT_SECONDS=4000 is invalid: must be <= "
        "VALIDIBOT_TASK_HARD_TIME_LIMIT_SECONDS=1800",
    ),
    "Dagster run retention 0": (
        {"VALIDIBOT_DAGSTER_RUN_RETENTION_DAYS": "0"},
        "prune_dagster_history",
        "VALIDIBOT_DAGSTER_RUN_RETENTION_DAYS='0' is invalid: expected a whole number of "
        "days >= 1; default 90",
    ),
    "Dagster run retention negative": (
        {"VALIDIBOT_DAGSTER_RUN_RETENTION_DAYS": "-30"},
        "prune_dagster_history",
        "VALIDIBOT_DAGSTER_RUN_RETENTION_DAYS='-30' is invalid",
    ),
    "D9 timezone": (
        {"VALIDIBOT_SCHEDULE_TIMEZONE": "Mars/Olympus_Mons"},
        "cleanup_stuck_runs",
        "VALIDIBOT_SCHEDULE_TIMEZONE='Mars/Olympus_Mons' is invalid: expected an IANA timezone",
    ),
}


@pytest.mark.parametrize("case", REFUSED, ids=str)
def test_a_bad_setting_refuses_its_task_naming_the_variable_and_changes_nothing(
    case, environment, rows
):
    environ, task, message = REFUSED[case]
    environment(environ)
    before = snapshot()
    with pytest.raises(CommandError) as refused:
        call_command(task)
    assert str(refused.value).startswith(f"{task}: refused: ")
    assert message in str(refused.value)
    assert snapshot() == before
    assert "purge_expired_submissions" not in str(refused.value).replace(f"{task}: ", "")


def test_the_same_value_on_the_command_line_is_refused_too(rows):
    """Settings and the command line now agree on what is acceptable."""
    before = snapshot()
    with pytest.raises(CommandError, match="--timeout-minutes: must be a positive integer"):
        call_command("cleanup_stuck_runs", timeout_minutes=0)
    assert snapshot() == before


def test_a_bad_setting_of_one_task_leaves_the_other_tasks_working(environment, rows, run):
    environment({"VALIDATOR_TIMEOUT_SECONDS": "0"})
    result = run("clear_sessions")
    assert result.summary["status"] == "completed"
    assert result.counts == {"deleted": 1}
    rows["live_run"].refresh_from_db()
    assert rows["live_run"].status == RunStatus.RUNNING


def test_doctor_lists_every_invalid_setting(environment):
    environment(
        {
            "VALIDIBOT_TRIGGER_TASK_TOKENS": "clear_sessions",
            "VALIDIBOT_PURGE_BATCH_SIZE": "abc",
            "VALIDIBOT_ALERT_WEBHOOK_TIMEOUT_SECONDS": "-1",
        }
    )
    import io

    out = io.StringIO()
    skip = ["database", "redis", "workers", "code_location", "daemon", "schedules", "overrides"]
    skip += ["task_health", "maintenance"]
    with pytest.raises(CommandError, match="1 check\\(s\\) failed: settings"):
        call_command("doctor", *[f"--skip={name}" for name in skip], stdout=out)
    line = next(line for line in out.getvalue().splitlines() if line.startswith("settings"))
    assert "VALIDIBOT_TRIGGER_TASK_TOKENS=<hidden> is invalid (entry 1 has no '=')" in line
    assert "VALIDIBOT_PURGE_BATCH_SIZE='abc' is invalid" in line
    assert "VALIDIBOT_ALERT_WEBHOOK_TIMEOUT_SECONDS='-1' is invalid" in line


def test_token_map_spaces_are_trimmed_and_a_bad_entry_never_echoes_a_token():
    assert parse_token_map(" clear_sessions = tok-1 , purge_expired_outputs=tok-2,") == {
        "clear_sessions": "tok-1",
        "purge_expired_outputs": "tok-2",
    }
    for raw, problem in [
        ("clear_sessions", "entry 1 has no '='"),
        ("clear_sessions=", "entry 1 (clear_sessions): empty token"),
        ("a=x,Bad Id=secret-token", "entry 2: the task id must be snake_case"),
        ("a=x,a=y", "entry 2: task a appears twice"),
        ("a=to ken", "whitespace in it"),
    ]:
        errors = check_environment({"VALIDIBOT_TRIGGER_TASK_TOKENS": raw}).errors
        message = errors["VALIDIBOT_TRIGGER_TASK_TOKENS"]
        assert problem in message
        assert "secret-token" not in message and "to ken" not in message


def test_every_registry_task_reads_the_settings_its_command_uses():
    """The table's task lists name real tasks; every batch-size setting has a reader."""
    ids = {task.id for task in BUILTIN_TASKS}
    for setting in SETTINGS:
        assert set(setting.tasks) <= ids, setting.name
    assert "VALIDATOR_TIMEOUT_SECONDS" in task_settings("cleanup_stuck_runs")
    assert BY_NAME["VALIDIBOT_PURGE_MAX_BATCHES"].parse("0") == 0  # 0 = until done, as on CLI


@pytest.mark.services
def test_bad_settings_never_stop_manage_py_from_starting(tmp_path):
    """A real start-up: `help` and `check` work, another task runs, the bad one is refused."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VALIDIBOT_")},
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "VALIDIBOT_TRIGGER_TASK_TOKENS": "clear_sessions",
        "VALIDIBOT_PURGE_BATCH_SIZE": "abc",
    }

    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert manage("help").returncode == 0
    assert manage("check").returncode == 0
    assert manage("migrate", "--verbosity=0").returncode == 0
    other = manage("clear_sessions")
    assert other.returncode == 0, other.stderr
    refused = manage("purge_expired_submissions")
    assert refused.returncode == 1
    assert (
        "purge_expired_submissions: refused: VALIDIBOT_PURGE_BATCH_SIZE='abc' is invalid: "
        "expected a whole number >= 1; default 100" in refused.stderr
    )
    assert "dictionary update sequence" not in refused.stderr + other.stderr


def test_an_invalid_setting_read_without_the_check_raises_its_message():
    """A reader that forgot to check still fails naming the variable, never with a default."""
    import copy

    from validibot.core.settings_check import SettingsError

    value = check_environment({"VALIDIBOT_DAGSTER_URL": "ftp://x"}).env("VALIDIBOT_DAGSTER_URL")
    with pytest.raises(SettingsError, match="VALIDIBOT_DAGSTER_URL='ftp://x' is invalid"):
        value.rstrip("/")
    with pytest.raises(SettingsError, match="expected an http:// or https:// URL"):
        int(value)
    assert str(copy.deepcopy(value)) == "<invalid VALIDIBOT_DAGSTER_URL>"
