"""Embedded default: SQLite, no Redis needed, debug on. Safe to run on a bare laptop."""

from config.settings.base import *  # noqa: F403  (settings modules extend base by design)
from config.settings.base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
