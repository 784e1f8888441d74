"""URL routes: the authenticated scheduled-task trigger API lives under /api/v1/scheduled/."""

from django.urls import path

from validibot.core.api import scheduled_tasks

urlpatterns = [
    path(
        "api/v1/scheduled/<str:task_id>/",
        scheduled_tasks.trigger_scheduled_task,
        name="scheduled-task-trigger",
    ),
    path(
        "api/v1/scheduled/<str:task_id>/runs/<str:run_id>/",
        scheduled_tasks.scheduled_task_run,
        name="scheduled-task-run",
    ),
]
