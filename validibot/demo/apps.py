"""App config for validibot.demo: seed data for the demo and the UI test."""

from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Holds ``seed_demo_data``; it imports every data app, and nothing imports it."""

    name = "validibot.demo"
    label = "demo"
    verbose_name = "Validibot demo data"
