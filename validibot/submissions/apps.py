"""App config for validibot.submissions."""

from django.apps import AppConfig


class SubmissionsConfig(AppConfig):
    """Submissions: user content kept only as long as its retention policy allows."""

    name = "validibot.submissions"
    label = "submissions"
