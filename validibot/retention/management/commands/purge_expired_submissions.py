"""Remove the content and stored file of submissions past their expiry; keep the row."""

from typing import Any

from validibot.retention.commands import PurgeCommand
from validibot.retention.repair import repair_submission_deadlines, report
from validibot.retention.services import SUBMISSIONS


class Command(PurgeCommand):
    help = (
        "Purge submissions whose expires_at <= now: delete the stored file, clear the inline "
        "content, set content_purged_at. Submissions with an active validation run wait; "
        "failed file deletions are queued for process_purge_retries."
    )
    task_name = "purge_expired_submissions"
    target = SUBMISSIONS

    def perform(self, options: dict[str, Any]) -> None:
        report(
            self,
            "submission deadline(s) from the latest terminal run",
            repair_submission_deadlines(self.dry_run, self.should_stop),
        )
        super().perform(options)
