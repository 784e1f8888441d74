"""A Django app installed only by the test settings: commands that fail, stall or do nothing."""

from django.apps import AppConfig


class TestAppConfig(AppConfig):
    name = "tests.support.testapp"
    label = "validibot_testapp"
