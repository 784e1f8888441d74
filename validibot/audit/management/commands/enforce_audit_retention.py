"""Archive audit-log entries past the hot-retention window, verify the archive, then delete."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from validibot.audit.archive import ArchiveBackend, ArchiveConfigError, get_archive_backend
from validibot.audit.models import AuditLogEntry
from validibot.audit.services import (
    archive_and_delete,
    claim_expired,
    claim_orphaned_actors,
    delete_orphaned_actors,
    expired_entries,
    orphaned_actors,
)
from validibot.core.maintenance import MaintenanceCommand, count_limited, positive_int

logger = logging.getLogger(__name__)

FROZEN_MESSAGE = (
    "audit retention frozen: AUDIT_RETENTION_ENABLED=false, nothing archived or deleted"
)


class Command(MaintenanceCommand):
    help = (
        "Hand audit-log entries older than AUDIT_HOT_RETENTION_DAYS (90) to the archive "
        "backend (AUDIT_ARCHIVE_BACKEND), and delete each chunk only once the backend has "
        "verified it; then delete actors left with no entries, except erased ones. "
        "AUDIT_RETENTION_ENABLED=false freezes it (exit 0, nothing changed)."
    )
    task_name = "enforce_audit_retention"

    def default_batch_size(self) -> int:
        return settings.AUDIT_RETENTION_CHUNK_SIZE

    def add_task_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--retention-days",
            type=positive_int,
            default=None,
            help="Keep entries this many days (default: settings.AUDIT_HOT_RETENTION_DAYS, 90).",
        )
        parser.add_argument(
            "--chunk-size",
            type=positive_int,
            default=None,
            help="Entries archived and deleted per transaction (same as --batch-size; "
            "default: settings.AUDIT_RETENTION_CHUNK_SIZE, 500).",
        )
        parser.add_argument(
            "--limit",
            type=positive_int,
            default=None,
            help="Archive and delete at most this many entries in this run (default: all).",
        )

    def check_options(self, options: dict[str, Any]) -> None:
        self.frozen = not settings.AUDIT_RETENTION_ENABLED
        self.summary_extra: dict[str, Any] = {"frozen": self.frozen}
        if self.frozen:
            return  # an incident switch: it must work even while the archive is misconfigured
        self.retention_days = options["retention_days"] or _setting_days()
        try:
            self.backend: ArchiveBackend = get_archive_backend()
        except ArchiveConfigError as exc:
            raise CommandError(f"{exc}; nothing was archived or deleted") from exc
        self.summary_extra.update(backend=self.backend.name, retention_days=self.retention_days)

    def perform(self, options: dict[str, Any]) -> None:
        if self.frozen:
            logger.warning(FROZEN_MESSAGE)
            self.progress(FROZEN_MESSAGE)
            self.counts["frozen"] = 1
            return
        if options["chunk_size"]:
            self.batch_size = options["chunk_size"]
        cutoff = self.now - timedelta(days=self.retention_days)
        self.summary_extra["cutoff"] = cutoff.isoformat()
        if self.dry_run:
            self._dry_run(cutoff, options["limit"])
            return
        self._archive_and_delete(cutoff, options["limit"])
        self._sweep_actors(cutoff)
        self.progress(f"swept {self.counts['actors_swept']} orphaned actor(s)")

    def _dry_run(self, cutoff: datetime, limit: int | None) -> None:
        limits = [n for n in (limit, self.dry_run_limit()) if n]
        due = count_limited(expired_entries(cutoff), min(limits) if limits else None)
        self.counts["archived"] = self.counts["deleted"] = due
        self.counts["chunks"] = -(-due // self.batch_size)
        self.counts["actors_swept"] = orphaned_actors(cutoff).count()
        self.progress(
            f"dry run: would archive ({self.backend.name}) and delete {due} audit entr(y/ies) "
            f"older than {cutoff.isoformat()}; {self.counts['actors_swept']} actor(s) "
            "are already orphaned"
        )

    def _archive_and_delete(self, cutoff: datetime, limit: int | None) -> None:
        def claim(size: int) -> list[AuditLogEntry]:
            if limit is not None:
                size = min(size, limit - self.counts["deleted"])
            return claim_expired(cutoff, size) if size > 0 else []

        self.run_in_batches(
            claim, lambda entries: archive_and_delete(entries, self.backend), self._report_chunk
        )

    def _sweep_actors(self, cutoff: datetime) -> None:
        deleted: list[int] = []

        def claim(size: int) -> list[int]:
            # A chunk whose actors all gained an entry meanwhile ends the sweep (no spinning).
            return [] if deleted and not deleted[-1] else claim_orphaned_actors(cutoff, size)

        def apply(pks: Sequence[int]) -> int:
            deleted.append(delete_orphaned_actors(cutoff, pks))
            return deleted[-1]

        self.run_in_batches(claim, apply, self._report_sweep)

    def _report_sweep(self, number: int, pks: Sequence[int], swept: int) -> None:
        self.counts["actors_swept"] += swept

    def _report_chunk(self, number: int, entries: Sequence[AuditLogEntry], done: int) -> None:
        self.counts["chunks"] = number
        self.counts["archived"] += done
        self.counts["deleted"] += done
        self.progress(
            f"chunk {number}: archived and deleted {done} (total {self.counts['deleted']})"
        )

    def emit_summary(self, status: str, started: float, **extra: Any) -> None:
        super().emit_summary(status, started, **getattr(self, "summary_extra", {}), **extra)


def _setting_days() -> int:
    days = settings.AUDIT_HOT_RETENTION_DAYS
    if not isinstance(days, int) or isinstance(days, bool) or days < 1:
        raise CommandError(
            f"AUDIT_HOT_RETENTION_DAYS={days!r} must be a positive whole number of days; "
            "nothing was archived or deleted"
        )
    return days
