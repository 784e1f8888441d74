"""The base class every maintenance command shares, and the batch helpers they use.

Contract of a maintenance command (docs/architecture.md explains why):
- ``--dry-run`` changes nothing and reports what a real run would do;
- work happens in bounded batches (:func:`validibot.core.batches.run_in_batches`), each
  committed in its own transaction, so a kill half-way loses nothing and the next run carries
  on where it stopped;
- one execution per task: a real run holds the task's lock (:mod:`validibot.core.locks`; not
  for a task whose registry entry has ``overlap_policy="allow"``); a
  second one prints ``status: busy``, changes nothing and exits 0;
- on Postgres, rows are claimed with ``SELECT ... FOR UPDATE SKIP LOCKED`` so two concurrent
  runs never process the same row;
- a stop request (the caller's check, the deadline, ``--stop-after``, SIGTERM/SIGINT from a
  shell) is honoured between batches: ``status: stopped`` with a ``reason``, exit non-zero;
- the last line of stdout is a one-line JSON summary (``task``, ``status``, ``dry_run``,
  ``counts``, ``duration_s``); a failure prints ``status: failed`` and exits non-zero.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS
from django.db.models import Model, QuerySet
from django.utils import timezone

from validibot.core.batches import (
    StopCheck,
    StopControl,
    StopRequested,
    current_control,
    run_in_batches,
    shell_signals,
    stop_check,
)
from validibot.core.locks import execution_lock
from validibot.core.settings_check import task_setting_errors
from validibot.tasks.policies import OVERLAP_ALLOW
from validibot.tasks.registry import RegistryError, get_task

SUMMARY_KEYS = ("task", "status", "dry_run", "counts", "duration_s")
BUSY_REASON = "another execution of this task holds its lock"


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
    sets ``count_names`` itself), may add arguments in ``add_task_arguments`` and validate
    them in ``check_options`` (raise ``CommandError`` before anything is touched), and do the
    work in ``perform``, through :meth:`run_in_batches` (or :meth:`delete_in_batches`),
    adding to ``self.counts`` as batches commit so a failure or a stop half-way still reports
    what was done. ``default_batch_size`` / ``default_max_batches`` give the defaults of
    ``--batch-size`` / ``--max-batches``.

    Before touching a row, a real run takes the task's lock (:mod:`validibot.core.locks`);
    when another execution holds it, the command reports ``status: "busy"``, changes nothing
    and exits 0. A dry run takes no lock: it changes nothing, so it neither waits for nor
    blocks a real run.
    """

    task_name: str = ""
    count_names: tuple[str, ...] = ()

    def default_batch_size(self) -> int:
        return settings.VALIDIBOT_CLEANUP_BATCH_SIZE

    def default_max_batches(self) -> int:
        """Batches per run when ``--max-batches`` is not given; 0 means until nothing is left."""
        return 0

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
            help="Rows per batch; each batch commits on its own "
            f"(default: {self.default_batch_size()}).",
        )
        parser.add_argument(
            "--max-batches",
            type=non_negative_int,
            default=None,
            help="Stop after this many batches; 0 means until nothing is left "
            f"(default: {self.default_max_batches()}).",
        )
        parser.add_argument(
            "--stop-after",
            type=positive_int,
            default=None,
            metavar="SECONDS",
            help="Stop at the first batch boundary after this many seconds, reporting "
            'status "stopped" (SIGTERM and Ctrl-C stop the same way).',
        )
        self.add_task_arguments(parser)

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
        self.batch_size: int = options["batch_size"] or self.default_batch_size()
        given = options["max_batches"]
        self.max_batches: int = self.default_max_batches() if given is None else given
        self.now: datetime = timezone.now()
        self.counts: dict[str, int] = dict.fromkeys(self.declared_counts(), 0)
        started = time.monotonic()
        control = current_control()
        with shell_signals() if control is None else contextlib.nullcontext() as signals:
            self.should_stop: StopCheck = stop_check(
                should_stop=control.should_stop if control else None,
                deadline=self._deadline(control, options["stop_after"]),
                signals=signals,
            )
            self._perform_and_report(options, started)

    def _perform_and_report(self, options: dict[str, Any], started: float) -> None:
        try:
            with self._execution_lock() as acquired:
                if not acquired:
                    self.emit_summary("busy", started, reason=BUSY_REASON)
                    return
                self.perform(options)
        except StopRequested as stop:
            self.emit_summary("stopped", started, reason=stop.reason)
            raise CommandError(f"{self.summary_name()} stopped: {stop.reason}") from None
        except Exception as exc:
            self.emit_summary("failed", started, error=f"{type(exc).__name__}: {exc}")
            raise CommandError(f"{self.summary_name()} failed: {exc}") from exc
        self.emit_summary("completed", started)

    def _refuse_invalid_settings(self) -> None:
        """A setting this task reads is invalid: refuse before touching anything, naming it
        (settings are checked at start-up; see validibot/core/settings_check.py)."""
        problems = task_setting_errors(self.summary_name())
        if problems:
            raise CommandError(f"{self.summary_name()}: refused: {'; '.join(problems)}")

    def _execution_lock(self) -> contextlib.AbstractContextManager[bool]:
        """The task's lock for a real run; a dry run changes nothing and takes none, and
        neither does a task whose registry entry allows overlapping runs (``allow``)."""
        name = self.summary_name()
        return execution_lock(name, dry_run=self.dry_run, overlap_allowed=overlap_allowed(name))

    @staticmethod
    def _deadline(control: StopControl | None, stop_after: int | None) -> float | None:
        deadlines = [control.deadline if control else None]
        if stop_after is not None:
            deadlines.append(time.time() + stop_after)
        known = [deadline for deadline in deadlines if deadline is not None]
        return min(known) if known else None

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

    def run_in_batches[Item, Result](
        self,
        claim: Callable[[int], Sequence[Item]],
        apply: Callable[[Sequence[Item]], Result],
        report: Callable[[int, Sequence[Item], Result], None] | None = None,
        *,
        using: str | None = DEFAULT_DB_ALIAS,
    ) -> int:
        """:func:`validibot.core.batches.run_in_batches` with this run's batch size, batch
        limit and stop check."""
        return run_in_batches(
            claim,
            apply,
            batch_size=self.batch_size,
            max_batches=self.max_batches,
            should_stop=self.should_stop,
            report=report,
            using=using,
        )

    def delete_in_batches(self, queryset: QuerySet, count_name: str) -> None:
        """Delete every row of ``queryset`` in claimed batches, each in its own transaction."""
        if self.dry_run:
            found = count_limited(queryset, self.dry_run_limit())
            self.counts[count_name] += found
            self.progress(
                f"dry run: would delete {found} {queryset.model._meta.verbose_name_plural}"
            )
            return

        def report(number: int, pks: Sequence[Any], _: object) -> None:
            self.counts[count_name] += len(pks)
            self.progress(f"batch {number}: deleted {len(pks)} (total {self.counts[count_name]})")

        self.run_in_batches(
            lambda size: claim_pks(queryset, size),
            lambda pks: queryset.model._default_manager.filter(pk__in=pks).delete(),
            report,
        )

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


def claim_pks(queryset: QuerySet, batch_size: int) -> list[Any]:
    """:func:`claim` returning primary keys only."""
    return [row.pk for row in claim(queryset.only("pk"), batch_size)]


def count_limited(queryset: QuerySet, limit: int | None) -> int:
    """``queryset.count()`` that stops at ``limit`` rows, so a dry run stays cheap on big tables."""
    if limit is None:
        return queryset.count()
    return queryset.order_by()[:limit].count()


def delete_in_batches(command: MaintenanceCommand, queryset: QuerySet, count_name: str) -> None:
    """Deprecated: use ``command.delete_in_batches(queryset, count_name)``."""
    command.delete_in_batches(queryset, count_name)


def overlap_allowed(task_id: str) -> bool:
    """Whether the registry lets runs of ``task_id`` overlap (``allow``: no per-task lock).

    A command that is no registry task (or a registry that cannot load) keeps the lock.
    """
    try:
        task = get_task(task_id)
    except RegistryError:
        return False
    return task is not None and task.overlap_policy == OVERLAP_ALLOW
