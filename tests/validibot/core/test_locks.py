"""One execution per task: a second execution finds the task's lock taken and reports busy.

The lock is held from outside the command the way another process would hold it: an advisory
lock on another connection on PostgreSQL, ``flock`` on the lock file on SQLite.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, connections

from tests.factories import IdempotencyKeyFactory, SubmissionFactory
from tests.support.testapp.management.commands import slow_task
from tests.validibot.conftest import NOW, run_command
from validibot.core.locks import lock_key, lock_path
from validibot.core.runner import run_task_command
from validibot.operations.models import IdempotencyKey
from validibot.submissions.models import Submission

ON_POSTGRES = connection.vendor == "postgresql"


@contextlib.contextmanager
def held_elsewhere(task_id: str) -> Iterator[None]:
    """Hold ``task_id``'s lock as another process would, for the block."""
    if ON_POSTGRES:
        params = connection.get_connection_params()
        params.pop("pool", None)
        other = connection.Database.connect(**params)
        other.autocommit = True
        try:
            other.execute("SELECT pg_advisory_lock(%s)", [lock_key(task_id)])
            yield
        finally:
            other.close()
        return
    fd = os.open(lock_path(task_id), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)


def test_lock_keys_are_stable_signed_64_bit_and_distinct():
    assert lock_key("purge_expired_submissions") == lock_key("purge_expired_submissions")
    assert lock_key("purge_expired_submissions") != lock_key("purge_expired_outputs")
    assert -(2**63) <= lock_key("clear_sessions") < 2**63


@pytest.mark.django_db
def test_a_second_execution_is_busy_and_changes_nothing():
    for _ in range(3):
        SubmissionFactory(expires_at=NOW - timedelta(hours=1))

    with held_elsewhere("purge_expired_submissions"):
        summary = run_task_command("purge_expired_submissions")

    assert summary["status"] == "busy"
    assert "lock" in summary["reason"]
    assert summary["counts"]["purged"] == 0
    assert not Submission.objects.filter(content_purged_at__isnull=False).exists()
    assert run_task_command("purge_expired_submissions")["counts"]["purged"] == 3


@pytest.mark.django_db
def test_busy_exits_zero_from_call_command_too():
    IdempotencyKeyFactory(expires_at=NOW - timedelta(hours=1))
    with held_elsewhere("cleanup_idempotency_keys"):
        call_command("cleanup_idempotency_keys")  # no CommandError: busy is not a failure
    assert IdempotencyKey.objects.count() == 1


@pytest.mark.django_db
def test_a_dry_run_takes_no_lock():
    IdempotencyKeyFactory(expires_at=NOW - timedelta(hours=1))
    with held_elsewhere("cleanup_idempotency_keys"):
        summary = run_task_command("cleanup_idempotency_keys", ["--dry-run"])
    assert summary["status"] == "completed" and summary["counts"] == {"deleted": 1}


@pytest.mark.django_db
def test_another_task_is_not_blocked():
    IdempotencyKeyFactory(expires_at=NOW - timedelta(hours=1))
    with held_elsewhere("purge_expired_submissions"):
        summary = run_task_command("cleanup_idempotency_keys")
    assert summary["status"] == "completed" and summary["counts"] == {"deleted": 1}


@pytest.mark.django_db
def test_the_lock_is_released_when_the_command_fails():
    from validibot.notifications.periodic_emails import register_periodic_email_handler

    def broken(**_: Any) -> int:
        raise RuntimeError("smtp down")

    register_periodic_email_handler("broken", broken)
    assert run_task_command("send_periodic_emails")["status"] == "failed"
    assert run_task_command("send_periodic_emails")["status"] == "failed", "not busy"


def _advisory_holders(key: int) -> int:
    """Sessions holding the advisory lock ``key`` (bigint keys: classid high, objid low)."""
    unsigned = key % 2**64
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = %s AND objid = %s AND objsubid = 1",
            [unsigned >> 32, unsigned & 0xFFFFFFFF],
        )
        return cursor.fetchone()[0]


def _run_at_once(threads: int, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], int, int]:
    """Start ``threads`` executions of ``slow_task`` together; return their statuses, the
    most that ever ran ``perform`` at once, and the most advisory-lock holders seen."""
    active = most = 0
    guard = threading.Lock()
    real_perform = slow_task.Command.perform

    def counted(self: slow_task.Command, options: dict[str, Any]) -> None:
        nonlocal active, most
        with guard:
            active += 1
            most = max(most, active)
        try:
            real_perform(self, options)
        finally:
            with guard:
                active -= 1

    monkeypatch.setattr(slow_task.Command, "perform", counted)
    statuses: list[str] = []
    start = threading.Barrier(threads)

    def execute() -> None:
        start.wait()
        try:
            statuses.append(run_command("slow_task", "--seconds", "2").summary["status"])
        finally:
            connections.close_all()

    workers = [threading.Thread(target=execute) for _ in range(threads)]
    for worker in workers:
        worker.start()
    holders = 0
    deadline = time.monotonic() + 30
    while any(w.is_alive() for w in workers):
        if ON_POSTGRES:
            holders = max(holders, _advisory_holders(lock_key("slow_task")))
        assert time.monotonic() < deadline, "executions did not finish"
        time.sleep(0.05)
    return statuses, most, holders


@pytest.mark.django_db(transaction=True)
def test_concurrent_executions_of_one_task_never_overlap(monkeypatch):
    statuses, most, _ = _run_at_once(4, monkeypatch)

    assert sorted(statuses) == ["busy", "busy", "busy", "completed"]
    assert most == 1


if ON_POSTGRES:

    @pytest.mark.postgres
    @pytest.mark.django_db(transaction=True)
    def test_concurrent_executions_on_postgres_hold_one_advisory_lock(monkeypatch):
        statuses, most, holders = _run_at_once(4, monkeypatch)

        assert statuses.count("completed") == 1 and most == 1
        assert holders == 1, "exactly one session held the task's advisory lock"
        assert _advisory_holders(lock_key("slow_task")) == 0, "released at the end"


@pytest.mark.subprocess
def test_a_file_database_gets_one_lock_folder_not_a_lock_file_per_task(tmp_path):
    """Issue 28 point 7: the first ``scripts/demo`` left ten ``.lock`` files in the checkout
    (beside ``db.sqlite3``); they now live in one ``.db.sqlite3.locks/`` folder, ignored by git."""
    import subprocess
    import sys

    from tests.support.dagster_stack import REPO_ROOT

    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
    }
    env.pop("VALIDIBOT_LOCK_DIR", None)
    for command in (["migrate", "-v0"], ["clear_sessions"], ["cleanup_idempotency_keys"]):
        subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=REPO_ROOT,
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == [".db.sqlite3.locks", "db.sqlite3"]
    locks = sorted(p.name for p in (tmp_path / ".db.sqlite3.locks").iterdir())
    assert len(locks) == 2 and all(name.endswith(".lock") for name in locks)
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", ".db.sqlite3.locks/x.lock"], cwd=REPO_ROOT, check=False
    )
    assert ignored.returncode == 0
