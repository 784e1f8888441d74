"""Archive backends for tests, named by dotted path in AUDIT_ARCHIVE_BACKEND."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from validibot.audit.archive import ArchiveError


class RecordingBackend:
    """Keeps every record it is given, in memory (class-level, as the command builds it)."""

    name = "recording"
    records: list[dict[str, Any]] = []

    def archive(self, records: Sequence[dict[str, Any]]) -> None:
        type(self).records.extend(records)


class FailingOnSecondChunkBackend:
    """Accepts the first chunk, then reports an archive failure."""

    name = "failing"
    calls = 0

    def archive(self, records: Sequence[dict[str, Any]]) -> None:
        type(self).calls += 1
        if type(self).calls >= 2:
            raise ArchiveError("bucket unreachable: 503 from the object store")


class NotABackend:
    """Has no archive() method."""
