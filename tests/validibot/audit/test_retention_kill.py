"""A SIGKILL in the middle of enforce_audit_retention loses nothing, on SQLite and Postgres.

The command runs as a real ``manage.py`` process against its own database and the filesystem
archive backend; the test kills it once a few chunks are archived, then checks that every
entry gone from the table is in the archive, that nothing else was lost, and that a second
run finishes the job.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.services import PG_HOST, PG_PORT, PG_USER, wait_until

pytestmark = [pytest.mark.services, pytest.mark.subprocess]

ROOT = Path(__file__).resolve().parents[3]
OLD, RECENT = 12_000, 50
SEED = f"""
from datetime import timedelta
from django.utils import timezone
from validibot.audit.models import AuditActor, AuditLogEntry
now = timezone.now()
actor = AuditActor.objects.create(identifier="kill-test", created_at=now - timedelta(days=900))
AuditLogEntry.objects.bulk_create(
    [AuditLogEntry(actor=actor, action="old", target=str(i), timestamp=now - timedelta(days=200),
                   payload={{"i": i}}) for i in range({OLD})]
    + [AuditLogEntry(actor=actor, action="recent", timestamp=now) for _ in range({RECENT})],
    batch_size=2000,
)
"""
IDS = """
import json
from validibot.audit.models import AuditLogEntry
print(json.dumps({a: list(AuditLogEntry.objects.filter(action=a).values_list("pk", flat=True))
                  for a in ("old", "recent")}))
"""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kill.sqlite3'}"
        return
    request.getfixturevalue("postgres_service")
    name = f"validibot_audit_kill_{uuid.uuid4().hex[:10]}"
    admin = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    directory = tmp_path / "archive"
    directory.mkdir()
    return directory


def environment(database_url: str, archive: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDIT_", "DATABASE_URL"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.test",
        DATABASE_URL=database_url,
        AUDIT_ARCHIVE_BACKEND="filesystem",
        AUDIT_ARCHIVE_PATH=str(archive),
    )
    return env


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def table_ids(env: dict[str, str]) -> dict[str, set[int]]:
    found = json.loads(manage(env, "shell", "-c", IDS).strip().splitlines()[-1])
    return {action: set(ids) for action, ids in found.items()}


def archived(archive: Path) -> list[dict]:
    """Every archived record; a partial or unparsable line fails the test."""
    return [
        json.loads(line)
        for path in sorted(archive.glob("audit-*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]


def test_sigkill_mid_run_loses_no_entry(database_url: str, archive: Path):
    env = environment(database_url, archive)
    manage(env, "migrate", "-v0")
    manage(env, "shell", "-c", SEED)
    before = table_ids(env)
    assert (len(before["old"]), len(before["recent"])) == (OLD, RECENT)

    process = subprocess.Popen(
        [sys.executable, "manage.py", "enforce_audit_retention", "--chunk-size=20"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: len(list(archive.glob("audit-*.jsonl"))) >= 5,
            timeout=120,
            interval=0.005,
            what="five archived chunks",
        )
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the run finished before the kill landed"

    after = table_ids(env)
    records = archived(archive)
    archived_ids = {r["id"] for r in records}
    deleted = before["old"] - after["old"]
    assert deleted, "some chunks were deleted before the kill"
    assert after["old"], "the kill landed mid-run, with old entries still to do"
    assert deleted <= archived_ids, "an entry was deleted without being archived"
    assert archived_ids <= before["old"], "only expired entries are archived"
    assert after["recent"] == before["recent"]
    assert not (before["old"] - deleted) ^ after["old"], "no entry vanished in any other way"

    manage(env, "enforce_audit_retention", "--chunk-size=500")

    final = table_ids(env)
    assert final == {"old": set(), "recent": before["recent"]}
    records = archived(archive)
    assert {r["id"] for r in records} == before["old"]
    assert all(r["action"] == "old" and r["payload"] == {"i": int(r["target"])} for r in records)
