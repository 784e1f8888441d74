"""Upstream Validibot's documented import path for the scheduled-task registry.

``validibot.core.tasks.registry`` is the contract downstream packages are written against
(``register_scheduled_admin_task`` from ``AppConfig.ready()``); its names are re-exported here
as upstream does. ``validibot.core.tasks.scheduled_tasks`` holds the Celery tasks of the
operator guide's manual path. Both are facades over the one registry
(:mod:`validibot.tasks.registry`); nothing inside the product imports them.
"""

from validibot.core.tasks import registry as _registry
from validibot.core.tasks.registry import *  # noqa: F403  (upstream re-exports them all)

__all__ = list(_registry.__all__)
