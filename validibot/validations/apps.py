"""App config for validibot.validations."""

from django.apps import AppConfig


class ValidationsConfig(AppConfig):
    """Validation runs, their outputs (artifacts) and validator callback receipts."""

    name = "validibot.validations"
    label = "validations"
