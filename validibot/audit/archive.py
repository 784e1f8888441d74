"""Archive backends for audit entries leaving the hot table: null (default) and JSONL files.

A backend's ``archive(records)`` returns only once every record is durably stored *and read
back*; anything less raises :class:`ArchiveError`, and the caller then deletes nothing. The
retention command deletes a chunk of rows only after this call returned, in the transaction
that holds the rows, so a crash at any point leaves each row in the table, in the archive, or
in both (a re-run archives it again: consumers de-duplicate on ``id``), never in neither.

``AUDIT_ARCHIVE_BACKEND`` selects one: ``null``, ``filesystem``, or the dotted path of a
class with the same interface (built with no arguments; it reads its own settings).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.utils.module_loading import import_string


class ArchiveError(Exception):
    """The archive could not store or verify a chunk; nothing of it may be deleted."""


class ArchiveConfigError(ValueError):
    """The archive settings are unusable; the message names the setting."""


class ArchiveBackend(Protocol):
    """Stores audit records durably before they leave the database."""

    name: str

    def archive(self, records: Sequence[dict[str, Any]]) -> None:
        """Store and verify ``records``; raise :class:`ArchiveError` if any is not safe."""


class NullArchiveBackend:
    """Keeps nothing: past the hot window, entries are simply deleted (upstream's default)."""

    name = "null"

    def archive(self, records: Sequence[dict[str, Any]]) -> None:
        return None


class FilesystemArchiveBackend:
    """One JSON Lines file per chunk under ``AUDIT_ARCHIVE_PATH``: written, fsynced, verified.

    The chunk is written to a hidden temporary file, fsynced, renamed into place and the
    directory fsynced, so a file with the final name is always complete. Then the file is read
    back and compared record by record with what was meant to be written.
    """

    name = "filesystem"

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        raw = str(path if path is not None else getattr(settings, "AUDIT_ARCHIVE_PATH", ""))
        self.directory = _usable_directory(raw)

    def archive(self, records: Sequence[dict[str, Any]]) -> None:
        if not records:
            return
        lines = [json.dumps(r, cls=DjangoJSONEncoder, sort_keys=True) + "\n" for r in records]
        final = self.directory / _file_name(records)
        try:
            self._write_durably(final, "".join(lines).encode())
        except OSError as exc:
            raise ArchiveError(f"cannot write audit archive {final}: {exc}") from exc
        self._verify(final, lines)

    def _write_durably(self, final: Path, data: bytes) -> None:
        temporary = final.with_name(f".{final.name}.tmp")
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself must survive a power cut
        finally:
            os.close(directory)

    def _verify(self, final: Path, lines: list[str]) -> None:
        try:
            stored = final.read_text(encoding="utf-8").splitlines(keepends=True)
        except OSError as exc:
            raise ArchiveError(f"cannot read back audit archive {final}: {exc}") from exc
        if [json.loads(line) for line in stored] != [json.loads(line) for line in lines]:
            raise ArchiveError(f"audit archive {final} does not match what was written")


def _file_name(records: Sequence[dict[str, Any]]) -> str:
    # The id range tells an operator what a file holds; the suffix keeps a re-archived range
    # (after a crash between archive and delete) from replacing a file another run wrote.
    first, last = records[0]["id"], records[-1]["id"]
    return f"audit-{first:012d}-{last:012d}-{uuid.uuid4().hex[:8]}.jsonl"


def _usable_directory(raw: str) -> Path:
    if not raw.strip():
        raise ArchiveConfigError(
            "AUDIT_ARCHIVE_PATH is not set; the filesystem archive backend needs a directory"
        )
    path = Path(raw)
    if not path.is_absolute():
        raise ArchiveConfigError(f"AUDIT_ARCHIVE_PATH={raw!r} must be an absolute path")
    if not path.is_dir():
        raise ArchiveConfigError(f"AUDIT_ARCHIVE_PATH={raw!r} is not an existing directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise ArchiveConfigError(f"AUDIT_ARCHIVE_PATH={raw!r} is not writable by this process")
    return path


BACKENDS: dict[str, type] = {
    NullArchiveBackend.name: NullArchiveBackend,
    FilesystemArchiveBackend.name: FilesystemArchiveBackend,
}


def get_archive_backend(name: str | None = None) -> ArchiveBackend:
    """The backend ``AUDIT_ARCHIVE_BACKEND`` names, built and checked (``ArchiveConfigError``)."""
    name = (name if name is not None else settings.AUDIT_ARCHIVE_BACKEND).strip()
    if name in BACKENDS:
        return BACKENDS[name]()
    if "." not in name:
        raise ArchiveConfigError(
            f"AUDIT_ARCHIVE_BACKEND={name!r} is not a known archive backend "
            f"(one of {sorted(BACKENDS)}, or the dotted path of a backend class)"
        )
    try:
        backend_class = import_string(name)
    except ImportError as exc:
        raise ArchiveConfigError(
            f"AUDIT_ARCHIVE_BACKEND={name!r} cannot be imported: {exc}"
        ) from exc
    backend = backend_class()
    if not callable(getattr(backend, "archive", None)):
        raise ArchiveConfigError(f"AUDIT_ARCHIVE_BACKEND={name!r} has no archive() method")
    return backend
