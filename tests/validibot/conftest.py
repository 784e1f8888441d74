"""Fixtures for the Django spine tests: a frozen clock, a command runner, a storage spy."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from django.core.files.storage import FileSystemStorage
from django.core.management import call_command
from django.utils import timezone

from validibot.core.maintenance import SUMMARY_KEYS, parse_summary
from validibot.notifications import periodic_emails

NOW = datetime(2026, 11, 25, 12, 0, 0, 123456, tzinfo=UTC)
"""The frozen 'now' of every test here; microseconds make boundary comparisons exact."""


@dataclass
class Clock:
    """The frozen time every command and factory sees; tests move it explicitly."""

    now: datetime = NOW


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Freeze ``django.utils.timezone.now`` (the one clock seam the commands read) at ``NOW``."""
    frozen = Clock()
    monkeypatch.setattr(timezone, "now", lambda: frozen.now)
    return frozen


@pytest.fixture(autouse=True)
def _no_periodic_email_handlers() -> Iterator[None]:
    """Handlers registered by one test never leak into the next."""
    saved = dict(periodic_emails._handlers)
    periodic_emails._handlers.clear()
    yield
    periodic_emails._handlers.clear()
    periodic_emails._handlers.update(saved)


@dataclass
class CommandRun:
    """What one in-process command run printed, with its parsed JSON summary."""

    summary: dict[str, Any]
    stdout: str
    stderr: str

    @property
    def counts(self) -> dict[str, int]:
        return self.summary["counts"]


def run_command(name: str, *args: str) -> CommandRun:
    """Run a management command in-process; check the last stdout line is its JSON summary."""
    out, err = io.StringIO(), io.StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return _checked_run(out.getvalue(), err.getvalue())


def _checked_run(stdout: str, stderr: str) -> CommandRun:
    last_line = stdout.strip().splitlines()[-1]
    summary = json.loads(last_line)
    assert tuple(summary)[: len(SUMMARY_KEYS)] == SUMMARY_KEYS
    assert parse_summary(stdout) == summary
    return CommandRun(summary=summary, stdout=stdout, stderr=stderr)


@pytest.fixture
def run() -> Callable[..., CommandRun]:
    """``run("command", "--flag", ...)`` -> :class:`CommandRun`."""
    return run_command


@dataclass
class StorageSpy:
    """Records stored-file deletions and makes the chosen names fail with ``OSError``."""

    deleted: list[str] = field(default_factory=list)
    attempted: list[str] = field(default_factory=list)
    failing: set[str] = field(default_factory=set)

    def fail_for(self, *names: str) -> None:
        self.failing.update(names)

    def heal(self) -> None:
        self.failing.clear()


@pytest.fixture
def storage(monkeypatch: pytest.MonkeyPatch) -> StorageSpy:
    """Spy on ``FileSystemStorage.delete``: real deletes, except for names set to fail."""
    spy = StorageSpy()
    real_delete = FileSystemStorage.delete

    def delete(self: FileSystemStorage, name: str) -> None:
        spy.attempted.append(name)
        if name in spy.failing:
            raise OSError(f"storage unavailable for {name}")
        real_delete(self, name)
        spy.deleted.append(name)

    monkeypatch.setattr(FileSystemStorage, "delete", delete)
    return spy
