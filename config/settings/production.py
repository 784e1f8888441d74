"""Production: secrets and the database come from the environment and have no defaults."""

from config.settings.base import *  # noqa: F403  (settings modules extend base by design)
from config.settings.base import env

# No defaults: a missing secret or database must stop the process at start, not at 3 AM.
SECRET_KEY = env("DJANGO_SECRET_KEY")
DATABASES = {"default": env.db("DATABASE_URL")}
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DJANGO_CONN_MAX_AGE", default=60)
DEBUG = False

# Operator surfaces: the trigger tokens (read and checked in base.py) are secrets with no
# default there either: unset means the HTTP trigger answers 503 (disabled), it never falls
# back to a shared value.
