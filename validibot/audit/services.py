"""Audit-log retention: archive a chunk, then delete it in the transaction that locked it."""

from __future__ import annotations

from collections.abc import Sequence
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


def claim_expired(cutoff: datetime, size: int) -> list[AuditLogEntry]:
    """Lock up to ``size`` expired entries (inside the batch's transaction), oldest first."""
    return list(
        expired_entries(cutoff)
        .select_related("actor")
        .select_for_update(skip_locked=True, of=("self",))
        .order_by("pk")[:size]
    )


def archive_and_delete(entries: Sequence[AuditLogEntry], backend: ArchiveBackend) -> int:
    """Archive the claimed ``entries``, then delete them; return how many.

    Called inside the transaction that claimed them and before the delete: if the backend
    raises, the transaction rolls back and nothing is deleted.
    """
    backend.archive([record(entry) for entry in entries])
    AuditLogEntry.objects.filter(pk__in=[entry.pk for entry in entries]).delete()
    return len(entries)


def archive_and_delete_chunk(cutoff: datetime, size: int, backend: ArchiveBackend) -> int:
    """One claimed, archived and deleted chunk in its own transaction (tests, shells)."""
    with transaction.atomic():
        entries = claim_expired(cutoff, size)
        return archive_and_delete(entries, backend) if entries else 0


def claim_orphaned_actors(cutoff: datetime, size: int) -> list[int]:
    """Lock up to ``size`` orphaned actors (inside the batch's transaction); their pks."""
    return list(
        orphaned_actors(cutoff)
        .select_for_update(skip_locked=True, of=("self",))
        .order_by("pk")
        .values_list("pk", flat=True)[:size]
    )


def delete_orphaned_actors(cutoff: datetime, pks: Sequence[int]) -> int:
    """Delete the claimed actors that are still orphaned; how many went."""
    # Re-checked in the DELETE: an entry may have been written for one meanwhile.
    deleted, _ = orphaned_actors(cutoff).filter(pk__in=pks).delete()
    return deleted
