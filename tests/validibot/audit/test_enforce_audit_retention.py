"""enforce_audit_retention: hot window, archive-then-delete, actors sweep, switch, bad input."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management.base import CommandError

from tests.factories import AuditActorFactory, AuditLogEntryFactory
from tests.validibot.audit.backends import FailingOnSecondChunkBackend, RecordingBackend
from tests.validibot.conftest import NOW
from validibot.audit import archive as archive_module
from validibot.audit.models import AuditActor, AuditLogEntry

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
EPSILON = timedelta(microseconds=1)
CUTOFF = NOW - 90 * DAY


def old(count: int, **fields) -> list[AuditLogEntry]:
    return [
        AuditLogEntryFactory(timestamp=CUTOFF - EPSILON - i * DAY, **fields) for i in range(count)
    ]


def archived_ids(directory: Path) -> list[int]:
    ids = []
    for path in sorted(directory.glob("audit-*.jsonl")):
        ids += [json.loads(line)["id"] for line in path.read_text().splitlines()]
    return ids


@pytest.fixture
def archive_dir(settings, tmp_path) -> Path:
    settings.AUDIT_ARCHIVE_BACKEND = "filesystem"
    settings.AUDIT_ARCHIVE_PATH = str(tmp_path)
    return tmp_path


def test_entries_past_the_hot_window_go_the_rest_stay(run):
    expired = old(3)
    at_cutoff = AuditLogEntryFactory(timestamp=CUTOFF)
    recent = AuditLogEntryFactory(timestamp=NOW - DAY)

    result = run("enforce_audit_retention")

    assert result.counts == {
        "archived": 3,
        "deleted": 3,
        "actors_swept": 3,
        "chunks": 1,
        "frozen": 0,
    }
    assert result.summary["backend"] == "null"
    assert result.summary["retention_days"] == 90
    assert result.summary["frozen"] is False
    assert set(AuditLogEntry.objects.values_list("pk", flat=True)) == {at_cutoff.pk, recent.pk}
    assert not AuditActor.objects.filter(pk__in=[e.actor_id for e in expired]).exists()


def test_the_filesystem_archive_holds_every_deleted_entry_before_it_is_gone(run, archive_dir):
    actor = AuditActorFactory(identifier="ana@example.com")
    expired = old(5, actor=actor, payload={"reason": "export", "n": 1})
    AuditLogEntryFactory(actor=actor, timestamp=NOW)

    result = run("enforce_audit_retention", "--chunk-size=2")

    assert result.counts["chunks"] == 3 and result.counts["deleted"] == 5
    assert sorted(archived_ids(archive_dir)) == sorted(e.pk for e in expired)
    assert not list(archive_dir.glob(".*.tmp")), "no temporary file left behind"
    first = json.loads(sorted(archive_dir.glob("audit-*.jsonl"))[0].read_text().splitlines()[0])
    assert first["actor"] == {"id": actor.pk, "kind": "user", "identifier": "ana@example.com"}
    assert first["payload"] == {"reason": "export", "n": 1}
    assert first["action"] == "submission.viewed"
    assert AuditActor.objects.filter(pk=actor.pk).exists(), "still has a recent entry"


def test_a_backend_error_stops_the_run_and_deletes_nothing_unarchived(run, settings):
    settings.AUDIT_ARCHIVE_BACKEND = "tests.validibot.audit.backends.FailingOnSecondChunkBackend"
    FailingOnSecondChunkBackend.calls = 0
    old(5)

    with pytest.raises(CommandError, match="bucket unreachable"):
        run("enforce_audit_retention", "--chunk-size=2")

    assert AuditLogEntry.objects.count() == 3, "only the chunk the backend accepted is gone"
    assert FailingOnSecondChunkBackend.calls == 2


def test_an_archive_that_does_not_read_back_deletes_nothing(run, archive_dir, monkeypatch):
    expired = old(3)
    real_write = archive_module.FilesystemArchiveBackend._write_durably

    def lossy_write(self, final, data: bytes) -> None:
        real_write(self, final, data.split(b"\n", 1)[1])  # the first record goes missing

    monkeypatch.setattr(archive_module.FilesystemArchiveBackend, "_write_durably", lossy_write)

    with pytest.raises(CommandError, match="does not match what was written"):
        run("enforce_audit_retention")

    assert AuditLogEntry.objects.count() == len(expired)


def test_orphaned_actors_are_swept_except_erased_and_new_ones(run):
    erased = AuditActorFactory(erased_at=NOW - 400 * DAY)
    erased_with_old_entry = AuditActorFactory(erased_at=NOW - 10 * DAY)
    old(1, actor=erased_with_old_entry)
    lonely_old = AuditActorFactory()
    just_created = AuditActorFactory(created_at=NOW - DAY)
    busy = AuditActorFactory()
    AuditLogEntryFactory(actor=busy, timestamp=NOW)

    result = run("enforce_audit_retention")

    assert result.counts["actors_swept"] == 1
    assert set(AuditActor.objects.values_list("pk", flat=True)) == {
        erased.pk,
        erased_with_old_entry.pk,
        just_created.pk,
        busy.pk,
    }
    assert not AuditActor.objects.filter(pk=lonely_old.pk).exists()


def test_chunks_of_500_by_default_and_the_limit(run, settings):
    settings.AUDIT_ARCHIVE_BACKEND = "tests.validibot.audit.backends.RecordingBackend"
    RecordingBackend.records = []
    actor = AuditActorFactory()
    AuditLogEntry.objects.bulk_create(
        AuditLogEntry(actor=actor, action="x", timestamp=CUTOFF - DAY) for _ in range(1001)
    )

    limited = run("enforce_audit_retention", "--limit=7", "--chunk-size=3")
    assert (limited.counts["deleted"], limited.counts["chunks"]) == (7, 3)

    rest = run("enforce_audit_retention")
    assert (rest.counts["deleted"], rest.counts["chunks"]) == (994, 2)
    assert len(RecordingBackend.records) == 1001
    assert AuditLogEntry.objects.count() == 0


def test_retention_days_option_and_setting(run, settings):
    ten_days = AuditLogEntryFactory(timestamp=NOW - 10 * DAY)
    forty_days = AuditLogEntryFactory(timestamp=NOW - 40 * DAY)

    assert run("enforce_audit_retention", "--retention-days=30").counts["deleted"] == 1
    assert not AuditLogEntry.objects.filter(pk=forty_days.pk).exists()
    settings.AUDIT_HOT_RETENTION_DAYS = 5
    assert run("enforce_audit_retention").counts["deleted"] == 1
    assert not AuditLogEntry.objects.filter(pk=ten_days.pk).exists()


def test_dry_run_changes_nothing_and_reports_what_would_go(run, archive_dir):
    old(4)
    AuditActorFactory()  # already orphaned
    before = list(AuditLogEntry.objects.order_by("pk").values())
    actors_before = AuditActor.objects.count()

    result = run("enforce_audit_retention", "--dry-run", "--chunk-size=3")

    assert result.summary["dry_run"] is True
    assert result.counts == {
        "archived": 4,
        "deleted": 4,
        "actors_swept": 1,
        "chunks": 2,
        "frozen": 0,
    }
    assert "would archive (filesystem) and delete 4" in result.stdout
    assert list(AuditLogEntry.objects.order_by("pk").values()) == before
    assert AuditActor.objects.count() == actors_before
    assert not list(archive_dir.iterdir())


def test_the_kill_switch_freezes_everything_and_exits_zero(run, settings, caplog):
    settings.AUDIT_RETENTION_ENABLED = False
    settings.AUDIT_ARCHIVE_BACKEND = "no-such-backend"  # the switch works even when broken
    old(3)
    AuditActorFactory()

    with caplog.at_level(logging.WARNING, logger="validibot.audit"):
        result = run("enforce_audit_retention")

    assert result.summary["status"] == "completed"
    assert result.summary["frozen"] is True
    assert result.counts == {
        "archived": 0,
        "deleted": 0,
        "actors_swept": 0,
        "chunks": 0,
        "frozen": 1,
    }
    assert "frozen" in result.stdout
    assert any("frozen" in record.getMessage() for record in caplog.records)
    assert AuditLogEntry.objects.count() == 3
    assert AuditActor.objects.count() == 4


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"AUDIT_ARCHIVE_BACKEND": "s3-glacier"}, "AUDIT_ARCHIVE_BACKEND='s3-glacier'"),
        ({"AUDIT_ARCHIVE_BACKEND": "no.such.Module"}, "AUDIT_ARCHIVE_BACKEND='no.such.Module'"),
        (
            {"AUDIT_ARCHIVE_BACKEND": "tests.validibot.audit.backends.NotABackend"},
            "has no archive() method",
        ),
        ({"AUDIT_ARCHIVE_BACKEND": "filesystem", "AUDIT_ARCHIVE_PATH": ""}, "AUDIT_ARCHIVE_PATH"),
        (
            {"AUDIT_ARCHIVE_BACKEND": "filesystem", "AUDIT_ARCHIVE_PATH": "relative/dir"},
            "AUDIT_ARCHIVE_PATH='relative/dir' must be an absolute path",
        ),
        (
            {"AUDIT_ARCHIVE_BACKEND": "filesystem", "AUDIT_ARCHIVE_PATH": "/no/such/dir"},
            "AUDIT_ARCHIVE_PATH='/no/such/dir' is not an existing directory",
        ),
        ({"AUDIT_HOT_RETENTION_DAYS": -5}, "AUDIT_HOT_RETENTION_DAYS=-5"),
        ({"AUDIT_HOT_RETENTION_DAYS": 0}, "AUDIT_HOT_RETENTION_DAYS=0"),
    ],
)
def test_bad_settings_fail_clearly_and_delete_nothing(run, settings, changes, named):
    for name, value in changes.items():
        setattr(settings, name, value)
    old(2)
    AuditActorFactory()

    with pytest.raises(CommandError) as raised:
        run("enforce_audit_retention")

    assert named in str(raised.value)
    assert "nothing was archived or deleted" in str(raised.value)
    assert AuditLogEntry.objects.count() == 2
    assert AuditActor.objects.count() == 3


def test_an_archive_path_that_is_a_file_is_refused(run, settings, tmp_path):
    a_file = tmp_path / "archive.jsonl"
    a_file.write_text("")
    settings.AUDIT_ARCHIVE_BACKEND = "filesystem"
    settings.AUDIT_ARCHIVE_PATH = str(a_file)
    old(1)

    with pytest.raises(CommandError, match="is not an existing directory"):
        run("enforce_audit_retention")
    assert AuditLogEntry.objects.count() == 1


@pytest.mark.parametrize("option", ["--retention-days=-1", "--chunk-size=0", "--limit=-3"])
def test_bad_options_are_refused(run, option):
    old(1)
    with pytest.raises(CommandError, match="must be a positive integer"):
        run("enforce_audit_retention", option)
    assert AuditLogEntry.objects.count() == 1
