"""Test settings: SQLite unless DATABASE_URL names Postgres; media under a temp folder."""

import tempfile
from pathlib import Path

from config.settings.base import *  # noqa: F403  (settings modules extend base by design)

MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="validibot-test-media-"))
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Test-only commands (noop, flaky, always-fail, slow) that Dagster tests register as tasks.
INSTALLED_APPS = [*INSTALLED_APPS, "tests.support.testapp"]  # noqa: F405
