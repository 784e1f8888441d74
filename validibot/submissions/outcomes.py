"""Outcome queries over submissions (read-only; see ``validibot/core/outcomes.py``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from validibot.core.outcomes import content_kept_past_expiry
from validibot.submissions.models import Submission
from validibot.tasks.outcomes import OutcomeFigure


def expired_content_kept(now: datetime, grace: timedelta) -> OutcomeFigure:
    """Submissions past ``expires_at`` plus ``grace`` still holding content or a stored file."""
    return content_kept_past_expiry(Submission.objects.all(), now - grace)
