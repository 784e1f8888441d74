"""Registry of periodic email handlers; downstream packages register from AppConfig.ready().

A handler is called as ``handler(stdout=..., now=..., dry_run=...)`` and returns how many
emails it sent (or would send, in a dry run). The community edition registers none.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, TextIO


class PeriodicEmailHandler(Protocol):
    """Sends one kind of periodic email; returns the number sent."""

    def __call__(self, *, stdout: TextIO, now: datetime, dry_run: bool) -> int: ...


_handlers: dict[str, PeriodicEmailHandler] = {}


def register_periodic_email_handler(name: str, handler: PeriodicEmailHandler) -> None:
    """Add a handler under a unique name; a second handler with the same name is an error."""
    if not callable(handler):
        raise TypeError(f"periodic email handler {name!r} is not callable")
    if name in _handlers and _handlers[name] is not handler:
        raise ValueError(f"periodic email handler {name!r} is already registered")
    _handlers[name] = handler


def get_periodic_email_handlers() -> list[tuple[str, PeriodicEmailHandler]]:
    """The handlers in registration order."""
    return list(_handlers.items())


def unregister_periodic_email_handler(name: str) -> None:
    """Remove a handler (tests, or a package that turns a feature off)."""
    _handlers.pop(name, None)
