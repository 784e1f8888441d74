"""App config for validibot.core."""

from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Core app: registry, base command, idempotency keys, periodic emails, containers."""

    name = "validibot.core"
    label = "core"
    verbose_name = "Validibot core"
