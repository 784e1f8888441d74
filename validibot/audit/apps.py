"""App config for validibot.audit."""

from django.apps import AppConfig


class AuditConfig(AppConfig):
    """The audit log and its hot-retention window."""

    name = "validibot.audit"
    label = "audit"
