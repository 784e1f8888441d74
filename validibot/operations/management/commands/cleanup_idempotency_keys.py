"""Delete idempotency keys past their lifetime (expires_at <= now), in batches."""

from typing import Any

from validibot.core.maintenance import MaintenanceCommand
from validibot.operations.models import IdempotencyKey


class Command(MaintenanceCommand):
    help = "Delete idempotency keys whose expires_at <= now (24-hour lifetime by default)."
    task_name = "cleanup_idempotency_keys"

    def perform(self, options: dict[str, Any]) -> None:
        self.delete_in_batches(IdempotencyKey.objects.filter(expires_at__lte=self.now), "deleted")
