"""Bad arguments: a clear CommandError (non-zero exit from the shell) and no row touched."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError

from validibot.tasks.registry import get_tasks

pytestmark = pytest.mark.django_db

PROJECT_ROOT = Path(__file__).resolve().parents[2]
COMMANDS = sorted({task.command for task in get_tasks()})
SHARED_BAD = [
    ("--batch-size=-1", "--batch-size", "must be a positive integer"),
    ("--batch-size=0", "--batch-size", "must be a positive integer"),
    ("--batch-size=abc", "--batch-size", "must be an integer"),
    ("--batch-size=2.5", "--batch-size", "must be an integer"),
    ("--max-batches=-1", "--max-batches", "must be zero or a positive integer"),
    ("--max-batches=many", "--max-batches", "must be an integer"),
    ("--batch-size=99999999999999999999", "--batch-size", "(1..2147483647)"),
    ("--batch-size=2147483648", "--batch-size", "(1..2147483647)"),
    ("--max-batches=99999999999999999999", "--max-batches", "(0..2147483647)"),
]
OWN_BAD = [
    ("cleanup_stuck_runs", "--timeout-minutes=0", "--timeout-minutes", "positive integer"),
    ("cleanup_stuck_runs", "--timeout-minutes=soon", "--timeout-minutes", "must be an integer"),
    ("cleanup_callback_receipts", "--days=0", "--days", "positive integer"),
    ("cleanup_callback_receipts", "--days=-30", "--days", "positive integer"),
    ("cleanup_orphaned_containers", "--grace-period=-1", "--grace-period", "zero or a positive"),
    ("seed_demo_data", "--scale=0", "--scale", "positive integer"),
    ("purge_stale_oidc_clients", "--retention-days=0", "--retention-days", "positive integer"),
    ("purge_stale_oidc_clients", "--retention-days=-1", "--retention-days", "positive integer"),
]
CASES = [(command, *bad) for command in COMMANDS for bad in SHARED_BAD] + OWN_BAD


def snapshot() -> dict[str, list[dict]]:
    """Every row of every project model (and sessions)."""
    return {
        model._meta.label: list(model._default_manager.order_by("pk").values())
        for model in apps.get_models()
        if model._meta.app_label
        in {"core", "submissions", "validations", "retention", "idp", "sessions"}
    }


@pytest.fixture
def seeded() -> dict[str, list[dict]]:
    call_command("seed_demo_data", "--no-files", stdout=io.StringIO())
    return snapshot()


@pytest.mark.parametrize(("command", "argument", "option", "message"), CASES)
def test_bad_argument_is_a_clear_command_error_and_touches_nothing(
    seeded, command, argument, option, message
):
    out = io.StringIO()

    with pytest.raises(CommandError) as caught:
        call_command(command, argument, stdout=out, stderr=io.StringIO())

    assert f"argument {option}" in str(caught.value)
    assert message in str(caught.value)
    assert argument.split("=", 1)[1] in str(caught.value)
    assert out.getvalue() == "", "nothing may start: no progress, no summary"
    assert snapshot() == seeded


@pytest.mark.parametrize(
    "argv",
    [
        ["purge_expired_submissions", "--batch-size=-1"],
        ["cleanup_idempotency_keys", "--max-batches", "x"],
    ],
)
@pytest.mark.subprocess
def test_bad_argument_exits_non_zero_from_the_shell(argv):
    result = subprocess.run(
        [sys.executable, "manage.py", *argv],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"DJANGO_SETTINGS_MODULE": "config.settings.test", "PATH": "/usr/bin:/bin"},
    )

    assert result.returncode != 0
    assert "must be" in result.stderr
    assert result.stdout == ""


def test_an_out_of_range_number_names_the_option_and_its_range_and_exits_2():
    result = subprocess.run(
        [sys.executable, "manage.py", "clear_sessions", "--batch-size", "99999999999999999999"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"DJANGO_SETTINGS_MODULE": "config.settings.test", "PATH": "/usr/bin:/bin"},
    )

    assert result.returncode == 2, result.stderr
    assert "argument --batch-size: must be a positive integer (1..2147483647)" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("command", "options", "message"),
    [
        ("purge_expired_submissions", {"batch_size": -1}, "--batch-size: must be a positive"),
        ("purge_expired_outputs", {"batch_size": 0}, "--batch-size: must be a positive"),
        ("cleanup_idempotency_keys", {"max_batches": -1}, "--max-batches: must be zero or"),
        ("clear_sessions", {"batch_size": "abc"}, "--batch-size: must be an integer"),
        # Unchecked, a negative window would put the cutoff in the future: every row would go.
        ("cleanup_callback_receipts", {"days": -5}, "--days: must be a positive"),
        ("cleanup_stuck_runs", {"timeout_minutes": -5}, "--timeout-minutes: must be a positive"),
        ("cleanup_orphaned_containers", {"grace_period": -1}, "--grace-period: must be zero or"),
    ],
)
def test_keyword_options_are_checked_like_command_line_ones(seeded, command, options, message):
    # call_command(cmd, days=-5) hands keyword values to handle() without argparse's types.
    out = io.StringIO()

    with pytest.raises(CommandError, match=re.escape(message)):
        call_command(command, stdout=out, stderr=io.StringIO(), **options)

    assert out.getvalue() == ""
    assert snapshot() == seeded
