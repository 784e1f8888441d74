"""The one batch loop every maintenance command uses, and the stop conditions it checks.

``run_in_batches`` claims a batch, applies it and commits it in its own transaction, then asks
whether to stop before the next one. Between batches is the only place a command stops, so a
stopped command has committed whole batches and nothing half-done; the caller's summary says
``status: "stopped"`` with the counts so far and the reason.

Who asks a command to stop (any of them, whichever comes first):

- the caller of :func:`validibot.core.runner.run_task_command` (the Dagster op): a
  ``should_stop`` callable (for example "the run was canceled") and a ``deadline`` (the task's
  hard time limit, an epoch from ``time.time()``), handed over through :func:`stop_control`
  (a context variable, so ``call_command`` and the command's argv stay as they are);
- ``--stop-after SECONDS`` on the command line;
- SIGTERM or SIGINT, when the command runs from a shell (:func:`shell_signals`).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from types import FrameType
from typing import Any

from django.db import DEFAULT_DB_ALIAS, transaction

StopCheck = Callable[[], str | None]
"""Returns ``None`` to carry on, or the reason to stop (``"run canceled"``)."""

DEADLINE_REASON = "hard time limit passed"


class StopRequested(Exception):  # noqa: N818  (reads as the condition, like KeyboardInterrupt)
    """Raised by :func:`run_in_batches` between batches when a stop condition holds."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def never() -> str | None:
    """The stop check of a command nobody can stop."""
    return None


def run_in_batches[Item, Result](
    claim: Callable[[int], Sequence[Item]],
    apply: Callable[[Sequence[Item]], Result],
    *,
    batch_size: int,
    max_batches: int = 0,
    should_stop: StopCheck = never,
    report: Callable[[int, Sequence[Item], Result], None] | None = None,
    using: str | None = DEFAULT_DB_ALIAS,
) -> int:
    """Claim and apply batches until ``claim`` returns nothing; return the number of batches.

    Each batch (``claim(batch_size)`` then ``apply(items)``) runs in one transaction on
    ``using`` (``None``: no transaction, for work outside the database); ``report(number,
    items, result)`` runs after the commit, so counts only ever include committed batches.
    ``max_batches`` of 0 means no limit. Before every batch, ``should_stop()`` is asked; a
    reason raises :class:`StopRequested`, leaving every committed batch committed.
    """
    number = 0
    while not max_batches or number < max_batches:
        reason = should_stop()
        if reason is not None:
            raise StopRequested(reason)
        with transaction.atomic(using=using) if using else contextlib.nullcontext():
            items = claim(batch_size)
            if not items:
                break
            result = apply(items)
        number += 1
        if report is not None:
            report(number, items, result)
    return number


def chunks[Item](items: Sequence[Item]) -> Callable[[int], Sequence[Item]]:
    """A ``claim`` over an in-memory list: the next ``batch_size`` items on each call."""
    position = 0

    def claim(batch_size: int) -> Sequence[Item]:
        nonlocal position
        batch = items[position : position + batch_size]
        position += len(batch)
        return batch

    return claim


@dataclass(frozen=True)
class StopControl:
    """What the caller of a command hands it: a stop check and a deadline (epoch seconds)."""

    should_stop: StopCheck | None = None
    deadline: float | None = None


_control: ContextVar[StopControl | None] = ContextVar("validibot_stop_control", default=None)


@contextlib.contextmanager
def stop_control(
    should_stop: StopCheck | None = None, deadline: float | None = None
) -> Iterator[StopControl]:
    """Make ``should_stop`` and ``deadline`` apply to the commands run inside this block.

    With neither given, an enclosing block's control stays in force: a task run inside another
    task's run (an upstream-shaped task whose function calls a built-in) still stops when its
    run is canceled.
    """
    enclosing = _control.get()
    if should_stop is None and deadline is None and enclosing is not None:
        yield enclosing
        return
    control = StopControl(should_stop=should_stop, deadline=deadline)
    token = _control.set(control)
    try:
        yield control
    finally:
        _control.reset(token)


def current_control() -> StopControl | None:
    """The :class:`StopControl` set by the caller, or ``None`` (a shell or ``call_command``)."""
    return _control.get()


def stop_check(
    *, should_stop: StopCheck | None, deadline: float | None, signals: SignalFlag | None
) -> StopCheck:
    """One check combining a received signal, the deadline and the caller's check, cheapest
    first (the caller's check may be a query; it runs once per batch)."""

    def check() -> str | None:
        if signals is not None and signals.received is not None:
            return f"received {signals.received}"
        if deadline is not None and time.time() >= deadline:
            return DEADLINE_REASON
        return should_stop() if should_stop is not None else None

    return check


class SignalFlag:
    """Remembers the first SIGTERM/SIGINT; the second one gets the previous handler's effect."""

    received: str | None = None


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def shell_signals() -> Iterator[SignalFlag | None]:
    """Turn SIGTERM/SIGINT into a stop at the next batch boundary while the block runs.

    Only in the main thread (Python delivers signals there and nowhere else); elsewhere it
    yields ``None`` and changes nothing. The first signal sets the flag and puts the previous
    handlers back, so a second Ctrl-C or SIGTERM acts at once, as it would have.
    """
    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    flag = SignalFlag()
    previous = {number: signal.getsignal(number) for number in STOP_SIGNALS}

    def restore() -> None:
        for number, handler in previous.items():
            signal.signal(number, handler)

    def handle(number: int, frame: FrameType | None) -> Any:
        flag.received = signal.Signals(number).name
        restore()

    for number in STOP_SIGNALS:
        signal.signal(number, handle)
    try:
        yield flag
    finally:
        restore()
