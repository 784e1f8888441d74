"""The base class every maintenance command shares, and the batch helpers they use.

Contract of a maintenance command (docs/architecture.md explains why):
- ``--dry-run`` changes nothing and reports what a real run would do;
- work happens in bounded batches, each committed in its own transaction, so a kill half-way
  loses nothing and the next run carries on where it stopped;
- on Postgres, rows are claimed with ``SELECT ... FOR UPDATE SKIP LOCKED`` so two concurrent
  runs never process the same row;
- the last line of stdout is a one-line JSON summary (``task``, ``status``, ``dry_run``,
  ``counts``, ``duration_s``); a failure prints ``status: failed`` and exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import Model, QuerySet
from django.utils import timezone

from validibot.core.settings_check import task_setting_errors
from validibot.tasks.registry import get_task

SUMMARY_KEYS = ("task", "status", "dry_run", "counts", "duration_s")


MAX_INT_OPTION = 2**31 - 1
"""Upper bound of every integer option: a 32-bit signed int fits every backend's columns and
LIMIT clauses (SQLite and Postgres fail with "datatype mismatch" / "bigint out of range" above
2**63, long after any sensible batch size)."""


def positive_int(value: str) -> int:
    """argparse type: an integer from 1 to :data:`MAX_INT_OPTION`."""
    number = _int(value)
    if not 1 <= number <= MAX_INT_OPTION:
        raise argparse.ArgumentTypeError(
            f"must be a positive integer (1..{MAX_INT_OPTION}), got {value!r}"
        )
    return number


def non_negative_int(value: str) -> int:
    """argparse type: an integer from 0 to :data:`MAX_INT_OPTION`."""
    number = _int(value)
    if not 0 <= number <= MAX_INT_OPTION:
        raise argparse.ArgumentTypeError(
            f"must be zero or a positive integer (0..{MAX_INT_OPTION}), got {value!r}"
        )
    return number


def _int(value: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"must be an integer, got {value!r}") from None


def parse_summary(output: str) -> dict[str, Any] | None:
    """The JSON summary on the last non-empty line of a command's stdout, or ``None``."""
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines:
        return None
    try:
        summary = json.loads(lines[-1])
    except json.JSONDecodeError:
        return None
    if not isinstance(summary, dict) or not all(key in summary for key in SUMMARY_KEYS):
        return None
    return summary


class MaintenanceCommand(BaseCommand):
    """Base for the scheduled maintenance commands.

    Subclasses set ``task_name`` (the registry id; default: the module name); the counts are
    read from the registry entry's ``count_descriptions`` (a command with no registry entry
    sets ``count_names`` itself), may add arguments in
    ``add_task_arguments`` and validate them in ``check_options`` (raise ``CommandError``
    before anything is touched), and do the work in ``perform``, adding to ``self.counts``
    as they go so a failure half-way still reports what was done.
    """

    task_name: str = ""
    count_names: tuple[str, ...] = ()
    batch_size_setting: str = "VALIDIBOT_CLEANUP_BATCH_SIZE"
    max_batches_setting: str | None = None

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Change nothing; report what a real run would do.",
        )
        parser.add_argument(
            "--batch-size",
            type=positive_int,
            default=None,
            help=f"Rows per batch; each batch commits on its own "
            f"(default: settings.{self.batch_size_setting}).",
        )
        parser.add_argument(
            "--max-batches",
            type=non_negative_int,
            default=None,
            help="Stop after this many batches; 0 means until nothing is left "
            f"(default: {self._max_batches_help()}).",
        )
        self.add_task_arguments(parser)

    def _max_batches_help(self) -> str:
        return f"settings.{self.max_batches_setting}" if self.max_batches_setting else "0"

    def add_task_arguments(self, parser: CommandParser) -> None:
        """Hook for command-specific arguments."""

    def check_options(self, options: dict[str, Any]) -> None:
        """Hook: raise ``CommandError`` for bad option values before any work starts."""

    def perform(self, options: dict[str, Any]) -> None:
        """Do the work, adding to ``self.counts``."""
        raise NotImplementedError

    def handle(self, *args: Any, **options: Any) -> None:
        self._refuse_invalid_settings()
        self._recheck_typed_options(options)
        self.check_options(options)
        self.dry_run: bool = options["dry_run"]
        self.batch_size: int = options["batch_size"] or getattr(settings, self.batch_size_setting)
        self.max_batches: int = self._resolve_max_batches(options["max_batches"])
        self.now: datetime = timezone.now()
        self.counts: dict[str, int] = dict.fromkeys(self.declared_counts(), 0)
        started = time.monotonic()
        try:
            self.perform(options)
        except Exception as exc:
            self.emit_summary("failed", started, error=f"{type(exc).__name__}: {exc}")
            raise CommandError(f"{self.summary_name()} failed: {exc}") from exc
        self.emit_summary("completed", started)

    def _refuse_invalid_settings(self) -> None:
        """A setting this task reads is invalid: refuse before touching anything, naming it
        (settings are checked at start-up; see validibot/core/settings_check.py)."""
        extra = (self.batch_size_setting, self.max_batches_setting)
        problems = task_setting_errors(self.summary_name(), extra)
        if problems:
            raise CommandError(f"{self.summary_name()}: refused: {'; '.join(problems)}")

    def _recheck_typed_options(self, options: dict[str, Any]) -> None:
        """Validate integer options again: ``call_command(cmd, days=-5)`` skips argparse types."""
        for action in self.create_parser("manage.py", self.summary_name())._actions:
            value = options.get(action.dest)
            if action.type not in (positive_int, non_negative_int) or value is None:
                continue
            try:
                options[action.dest] = action.type(str(value))
            except argparse.ArgumentTypeError as exc:
                option = "/".join(action.option_strings)
                raise CommandError(f"Error: argument {option}: {exc}") from None

    def _resolve_max_batches(self, given: int | None) -> int:
        if given is not None:
            return given
        return getattr(settings, self.max_batches_setting) if self.max_batches_setting else 0

    def declared_counts(self) -> tuple[str, ...]:
        """Count names: the command's own, else those its registry entry declares."""
        if self.count_names:
            return self.count_names
        task = get_task(self.summary_name())
        return task.count_names if task is not None else ()

    def summary_name(self) -> str:
        return self.task_name or type(self).__module__.rsplit(".", 1)[-1]

    def emit_summary(self, status: str, started: float, **extra: Any) -> None:
        summary = {
            "task": self.summary_name(),
            "status": status,
            "dry_run": self.dry_run,
            "counts": self.counts,
            "duration_s": round(time.monotonic() - started, 3),
            **extra,
        }
        self.stdout.write(json.dumps(summary, sort_keys=False))

    def progress(self, message: str) -> None:
        """One human-readable progress line (never the last line: the summary is)."""
        self.stdout.write(message)

    def batches(self) -> Iterator[int]:
        """Batch numbers 1, 2, ... up to ``max_batches`` (forever when it is 0)."""
        number = 0
        while not self.max_batches or number < self.max_batches:
            number += 1
            yield number

    def dry_run_limit(self) -> int | None:
        """How many rows a real run would reach at most (``None``: no limit)."""
        return self.batch_size * self.max_batches if self.max_batches else None


def claim(queryset: QuerySet, batch_size: int) -> list[Model]:
    """Lock and return up to ``batch_size`` rows, skipping rows another run holds.

    Must be called inside ``transaction.atomic()``. On SQLite ``select_for_update`` is a
    no-op, which is safe there because SQLite serialises writers.
    """
    return list(
        queryset.select_for_update(skip_locked=True, of=("self",)).order_by("pk")[:batch_size]
    )


def count_limited(queryset: QuerySet, limit: int | None) -> int:
    """``queryset.count()`` that stops at ``limit`` rows, so a dry run stays cheap on big tables."""
    if limit is None:
        return queryset.count()
    return queryset.order_by()[:limit].count()


def delete_in_batches(command: MaintenanceCommand, queryset: QuerySet, count_name: str) -> None:
    """Delete every row of ``queryset`` in claimed batches, each in its own transaction."""
    if command.dry_run:
        found = count_limited(queryset, command.dry_run_limit())
        command.counts[count_name] += found
        command.progress(
            f"dry run: would delete {found} {queryset.model._meta.verbose_name_plural}"
        )
        return
    for number in command.batches():
        with transaction.atomic():
            pks = [row.pk for row in claim(queryset.only("pk"), command.batch_size)]
            if not pks:
                break
            queryset.model._default_manager.filter(pk__in=pks).delete()
        command.counts[count_name] += len(pks)
        command.progress(f"batch {number}: deleted {len(pks)} (total {command.counts[count_name]})")
