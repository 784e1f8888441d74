"""One execution per task, enforced by the database the task works on.

A maintenance command takes its task's lock before it touches a row and gives it back when it
ends, whoever started it (a schedule, the UI, the HTTP trigger, a shell). A second execution
that finds the lock taken does nothing and reports ``busy``. This holds whatever Dagster's run
bookkeeping says, for instance after a run was marked failed while its command still ran.

- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a stable 64-bit key
  derived from the task id, held on a connection of its own. Django's connection handling
  (``CONN_HEALTH_CHECKS``, ``close_old_connections``, per-batch transactions) never touches
  that connection, so it cannot drop the lock half-way; if the process dies, the server ends
  the session and the lock goes with it.
- SQLite: ``fcntl.flock`` on a file next to the database file (or in
  ``settings.VALIDIBOT_LOCK_DIR``); the kernel releases it when the process dies. An in-memory
  database belongs to one process, so its lock files carry the process id.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections


def lock_key(task_id: str) -> int:
    """The task's advisory-lock key: a signed 64-bit hash of its id, the same in every process."""
    digest = hashlib.blake2b(f"validibot.task:{task_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def execution_lock(
    task_id: str, *, dry_run: bool, overlap_allowed: bool
) -> contextlib.AbstractContextManager[bool]:
    """What one execution of a task holds: its lock for a real run; nothing (``True``) for a
    dry run, which changes nothing, or a task whose runs may overlap (``allow``)."""
    if dry_run or overlap_allowed:
        return contextlib.nullcontext(True)
    return task_lock(task_id)


@contextlib.contextmanager
def task_lock(task_id: str, using: str = DEFAULT_DB_ALIAS) -> Iterator[bool]:
    """Hold the task's lock for the block; yields ``False`` (and holds nothing) when it is taken."""
    wrapper = connections[using]
    if wrapper.vendor == "postgresql":
        with _advisory_lock(wrapper, lock_key(task_id)) as acquired:
            yield acquired
    else:
        with _file_lock(lock_path(task_id, using)) as acquired:
            yield acquired


# The session sits idle while the command works on its other connection: it must not be ended
# for idleness (a deployment's idle_session_timeout), and a holder whose host vanished without
# closing its socket must be noticed in about a minute, not after the kernel's default two
# hours of TCP silence, or every later execution would be busy until then.
LOCK_SQL = (
    "SELECT set_config('idle_session_timeout', '0', false),"
    " set_config('tcp_keepalives_idle', '30', false),"
    " set_config('tcp_keepalives_interval', '10', false),"
    " set_config('tcp_keepalives_count', '3', false),"
    " pg_try_advisory_lock(%s)"
)


@contextlib.contextmanager
def _advisory_lock(wrapper: Any, key: int) -> Iterator[bool]:
    # A raw DB-API connection built from Django's settings for this alias, outside Django's
    # connection handler (a pooled connection would keep the session, and the lock, alive).
    params = wrapper.get_connection_params()
    params.pop("pool", None)
    connection = wrapper.Database.connect(**params)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(LOCK_SQL, [key])
            acquired = bool(cursor.fetchone()[-1])
        try:
            yield acquired
        finally:
            if acquired:
                with contextlib.suppress(Exception), connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
    finally:
        connection.close()  # ends the session: the lock cannot outlive the command


def lock_path(task_id: str, using: str = DEFAULT_DB_ALIAS) -> Path:
    """The lock file of ``task_id`` for the SQLite database ``using``."""
    wrapper = connections[using]
    name = str(wrapper.settings_dict["NAME"])
    configured = settings.VALIDIBOT_LOCK_DIR
    if wrapper.is_in_memory_db():
        folder = Path(configured or tempfile.gettempdir())
        stem = f"validibot-memory-{os.getpid()}-{task_id}"
    else:
        database = Path(name).resolve()
        # One hidden folder beside the database, not a file per task in (say) the checkout.
        folder = Path(configured) if configured else database.parent / f".{database.name}.locks"
        tag = hashlib.blake2b(str(database).encode(), digest_size=6).hexdigest()
        stem = f".{database.name}-{tag}-{task_id}"
    return folder / f"{stem}.lock"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[bool]:
    # The file stays behind on purpose: deleting it would let a third process lock a new
    # file while the second still holds the old one.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
