"""App config for validibot.retention."""

from django.apps import AppConfig


class RetentionConfig(AppConfig):
    """Purges of expired content and the retry queue for purges that failed."""

    name = "validibot.retention"
    label = "retention"
