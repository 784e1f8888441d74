"""Outcome queries' shared base: a read-only transaction, the query runner, the overdue figure.

An outcome check (``validibot/tasks/outcomes.py``) names a query function in the app that owns
the rows; :func:`run_outcome_query` imports it and runs it inside :func:`read_only`, so a
check can never change data: on PostgreSQL the transaction is ``READ ONLY`` (the server refuses
any write), on SQLite the connection is ``query_only`` for its duration; either way the
transaction is rolled back at the end. It also holds the sessions query, as ``clear_sessions``
lives here (Django's session table belongs to no app of ours).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Count, Min, Q, QuerySet

from validibot.tasks.outcomes import OutcomeFigure

OutcomeQuery = Callable[[datetime, timedelta], OutcomeFigure]


class OutcomeQueryError(RuntimeError):
    """The query could not run or returned something that is not an ``OutcomeFigure``."""


@contextmanager
def read_only(using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """A transaction in which the database refuses writes; always rolled back."""
    connection = connections[using]
    sqlite = connection.vendor == "sqlite"
    try:
        with transaction.atomic(using=using):
            with connection.cursor() as cursor:
                if connection.vendor == "postgresql":
                    cursor.execute("SET TRANSACTION READ ONLY")
                elif sqlite:
                    cursor.execute("PRAGMA query_only = ON")
            try:
                yield
            finally:
                transaction.set_rollback(True, using=using)
    finally:
        if sqlite:  # a connection setting, not a transaction's: switched back by hand
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA query_only = OFF")


def load_query(path: str) -> OutcomeQuery:
    """The function at ``path`` (``package.module.function``), naming the path if missing."""
    module_name, _, attribute = path.rpartition(".")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise OutcomeQueryError(f"cannot load outcome query {path!r}: {exc}") from exc
    if not callable(function):
        raise OutcomeQueryError(f"outcome query {path!r} is not callable")
    return function


def run_outcome_query(path: str, now: datetime, grace: timedelta) -> OutcomeFigure:
    """Run the query at ``path`` read-only and return its figure."""
    query = load_query(path)
    with read_only():
        figure = query(now, grace)
    if not isinstance(figure, OutcomeFigure):
        raise OutcomeQueryError(
            f"outcome query {path!r} returned {type(figure).__name__}, not an OutcomeFigure"
        )
    return figure


def overdue_figure(rows: QuerySet, due_field: str, cutoff: datetime) -> OutcomeFigure:
    """How many of ``rows`` fell due at or before ``cutoff``, and how long ago the oldest did.

    ``cutoff`` is ``now - grace``: a row offends once it is overdue by more than the grace,
    and its overdue time is counted from there.
    """
    overdue = rows.filter(**{f"{due_field}__lte": cutoff})
    found = overdue.aggregate(count=Count("pk"), oldest=Min(due_field))
    oldest = found["oldest"]
    seconds = (cutoff - oldest).total_seconds() if oldest is not None else 0.0
    return OutcomeFigure(count=found["count"], oldest_overdue_seconds=max(seconds, 0.0))


def expired_sessions(now: datetime, grace: timedelta) -> OutcomeFigure:
    """Database sessions past ``expire_date`` plus ``grace`` (none with another engine)."""
    from django.conf import settings
    from django.contrib.sessions.models import Session

    from validibot.core.management.commands.clear_sessions import DB_ENGINES

    if settings.SESSION_ENGINE not in DB_ENGINES:
        return OutcomeFigure(count=0)
    return overdue_figure(Session.objects.all(), "expire_date", now - grace)


def content_kept_past_expiry(rows: QuerySet, cutoff: datetime) -> OutcomeFigure:
    """Unpurged ``rows`` expired by ``cutoff`` that still hold inline content or a file.

    Rows handed to the purge retry queue (``purge_retries``) are left to that queue's own
    checks: their inline content is already gone and their file is being retried.
    """
    holding = rows.filter(content_purged_at__isnull=True, purge_retries__isnull=True).filter(
        ~Q(content="") | ~Q(file="")
    )
    return overdue_figure(holding, "expires_at", cutoff)
