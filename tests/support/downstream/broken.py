"""Broken downstream registrations: each function is one mistake a package can make.

Named as ``VALIDIBOT_TASK_MODULES=tests.support.downstream.broken:<function>``; the code
location must refuse to load, naming the task and the cause.
"""

from dataclasses import replace

from tests.support.downstream.scheduled import PURGE_STALE_REPORTS
from validibot.core.tasks.registry import register_scheduled_admin_task


def bad_cron() -> None:
    register_scheduled_admin_task(replace(PURGE_STALE_REPORTS, schedule_cron="61 * * * *"))


def unknown_celery_task() -> None:
    register_scheduled_admin_task(
        replace(PURGE_STALE_REPORTS, celery_task="downstream.no_such_task")
    )


def duplicate_id() -> None:
    register_scheduled_admin_task(PURGE_STALE_REPORTS)
    register_scheduled_admin_task(replace(PURGE_STALE_REPORTS, name="Purge stale reports again"))
