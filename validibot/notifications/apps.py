"""App config for validibot.notifications."""

from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    """Holds ``send_periodic_emails`` and the periodic-email handler registry."""

    name = "validibot.notifications"
    label = "notifications"
    verbose_name = "Validibot notifications"
