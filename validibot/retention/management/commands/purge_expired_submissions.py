"""Remove the content and stored file of submissions past their expiry; keep the row."""

from validibot.retention.commands import PurgeCommand
from validibot.retention.services import SUBMISSIONS


class Command(PurgeCommand):
    help = (
        "Purge submissions whose expires_at <= now: delete the stored file, clear the inline "
        "content, set content_purged_at. Submissions with an active validation run wait; "
        "failed file deletions are queued for process_purge_retries."
    )
    task_name = "purge_expired_submissions"
    target = SUBMISSIONS
