"""Which environment variable names the Celery broker: one rule for the Dagster executor, the
workers and ``manage.py doctor``. Pure Python (the code location reads it without Django).

Only the environment counts, not Django's settings: an unset broker is what selects the
embedded default (in-process executor, no Redis).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

BROKER_ENVS = ("CELERY_BROKER_URL", "REDIS_URL")
BACKEND_ENVS = ("CELERY_RESULT_BACKEND", "CELERY_BROKER_URL", "REDIS_URL")


def first_set(names: tuple[str, ...], environ: Mapping[str, str] | None = None) -> str | None:
    """The first of ``names`` set to a non-blank value, or ``None``."""
    environ = os.environ if environ is None else environ
    return next((name for name in names if environ.get(name, "").strip()), None)


def broker_url(environ: Mapping[str, str] | None = None) -> str:
    """The broker URL the stack uses, or ``""`` on the embedded default."""
    environ = os.environ if environ is None else environ
    name = first_set(BROKER_ENVS, environ)
    return environ[name].strip() if name else ""
