"""Test settings with the downstream package installed (its ready() registers its task)."""

from config.settings.test import *  # noqa: F403  (extends the test settings by design)

INSTALLED_APPS = [*INSTALLED_APPS, "tests.support.downstream"]  # noqa: F405
