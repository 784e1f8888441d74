"""App config for validibot.core."""

from django.apps import AppConfig


class CoreConfig(AppConfig):
    """The shared base: command base, batch loop, locks, settings checks, ``clear_sessions``."""

    name = "validibot.core"
    label = "core"
    verbose_name = "Validibot core"
