"""App config for validibot.idp."""

from django.apps import AppConfig


class IdpConfig(AppConfig):
    """OIDC clients (some dynamically registered) and the tokens issued to them."""

    name = "validibot.idp"
    label = "idp"
