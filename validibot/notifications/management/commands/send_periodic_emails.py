"""Run every registered periodic email handler in order; with none registered, say so."""

from collections.abc import Sequence
from typing import Any

from validibot.core.batches import chunks, run_in_batches
from validibot.core.maintenance import MaintenanceCommand
from validibot.notifications.periodic_emails import (
    PeriodicEmailHandler,
    get_periodic_email_handlers,
)


class Command(MaintenanceCommand):
    help = (
        "Run each periodic email handler registered by downstream packages, in registration "
        "order. One failing handler does not stop the others, but fails the command."
    )
    task_name = "send_periodic_emails"

    def perform(self, options: dict[str, Any]) -> None:
        handlers = get_periodic_email_handlers()
        self.counts["handlers"] = len(handlers)
        if not handlers:
            self.progress("No periodic email handlers registered; nothing to do.")
            return
        errors: list[str] = []

        def send(batch: Sequence[tuple[str, PeriodicEmailHandler]]) -> None:
            for name, handler in batch:
                try:
                    sent = handler(stdout=self.stdout, now=self.now, dry_run=self.dry_run)
                except Exception as exc:  # isolate handlers from each other
                    errors.append(f"{name}: {type(exc).__name__}: {exc}")
                    self.counts["handler_errors"] += 1
                    continue
                self.counts["sent"] += int(sent or 0)
                self.progress(f"{name}: {'would send' if self.dry_run else 'sent'} {sent or 0}")

        # One handler per batch, outside any transaction (handlers send mail; they manage
        # their own rows): a stop request is honoured between two handlers.
        run_in_batches(
            chunks(handlers), send, batch_size=1, should_stop=self.should_stop, using=None
        )
        if errors:
            raise RuntimeError("; ".join(errors))
