"""Audit-log retention: archive a chunk, then delete it in the transaction that locked it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet

from validibot.audit.archive import ArchiveBackend
from validibot.audit.models import AuditActor, AuditLogEntry


def expired_entries(cutoff: datetime) -> QuerySet:
    """Entries older than ``cutoff`` (strictly): past the hot-retention window."""
    return AuditLogEntry.objects.filter(timestamp__lt=cutoff)


def orphaned_actors(cutoff: datetime) -> QuerySet:
    """Actors with no entries left, except erased ones (tombstones stay).

    Only actors created before ``cutoff``: a newer actor with no entry yet may be about to
    get its first one.
    """
    has_entries = AuditLogEntry.objects.filter(actor=OuterRef("pk"))
    return AuditActor.objects.filter(erased_at__isnull=True, created_at__lt=cutoff).exclude(
        Exists(has_entries)
    )


def record(entry: AuditLogEntry) -> dict[str, Any]:
    """The archived form of one entry (the actor is copied: it may be swept later)."""
    actor = entry.actor
    return {
        "id": entry.pk,
        "timestamp": entry.timestamp,
        "action": entry.action,
        "target": entry.target,
        "payload": entry.payload,
        "actor": None
        if actor is None
        else {"id": actor.pk, "kind": actor.kind, "identifier": actor.identifier},
    }


def archive_and_delete_chunk(cutoff: datetime, size: int, backend: ArchiveBackend) -> int:
    """Claim up to ``size`` expired entries, archive them, delete them; return how many.

    The archive call happens while the rows are locked and before the delete, in one
    transaction: if the backend raises, the transaction rolls back and nothing is deleted.
    """
    with transaction.atomic():
        entries = list(
            expired_entries(cutoff)
            .select_related("actor")
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("pk")[:size]
        )
        if not entries:
            return 0
        backend.archive([record(entry) for entry in entries])
        AuditLogEntry.objects.filter(pk__in=[entry.pk for entry in entries]).delete()
    return len(entries)


def sweep_orphaned_actors(cutoff: datetime, size: int) -> Iterator[int]:
    """Delete orphaned actors in chunks, yielding each chunk's count."""
    while True:
        with transaction.atomic():
            pks = list(
                orphaned_actors(cutoff)
                .select_for_update(skip_locked=True, of=("self",))
                .order_by("pk")
                .values_list("pk", flat=True)[:size]
            )
            if not pks:
                return
            # Re-checked in the DELETE: an entry may have been written for one meanwhile.
            deleted, _ = orphaned_actors(cutoff).filter(pk__in=pks).delete()
        if not deleted:
            return
        yield deleted
