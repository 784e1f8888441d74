"""Remove the content and stored file of validation outputs past their expiry; keep the row."""

from typing import Any

from validibot.retention.commands import PurgeCommand
from validibot.retention.repair import repair_output_deadlines, report
from validibot.retention.services import OUTPUTS


class Command(PurgeCommand):
    help = (
        "Purge validation outputs whose expires_at <= now: delete the stored file, clear the "
        "inline content, set content_purged_at. Outputs of a still-active run wait; failed "
        "file deletions are queued for process_purge_retries."
    )
    task_name = "purge_expired_outputs"
    target = OUTPUTS

    def perform(self, options: dict[str, Any]) -> None:
        report(
            self,
            "output deadline(s) from their run's end",
            repair_output_deadlines(self.dry_run, self.should_stop),
        )
        super().perform(options)
