"""Delete validator callback receipts older than the retention window."""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser

from validibot.core.maintenance import MaintenanceCommand, positive_int
from validibot.validations.models import CallbackReceipt


class Command(MaintenanceCommand):
    help = "Delete callback receipts whose received_at is older than --days (default 30)."
    task_name = "cleanup_callback_receipts"

    def add_task_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=positive_int,
            default=None,
            help="Keep receipts this many days "
            "(default: settings.VALIDIBOT_CALLBACK_RECEIPT_RETENTION_DAYS, 30).",
        )

    def perform(self, options: dict[str, Any]) -> None:
        days = options["days"] or settings.VALIDIBOT_CALLBACK_RECEIPT_RETENTION_DAYS
        cutoff = self.now - timedelta(days=days)
        self.delete_in_batches(CallbackReceipt.objects.filter(received_at__lt=cutoff), "deleted")
