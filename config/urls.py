"""URL routes: the authenticated scheduled-task trigger API lives under /api/v1/scheduled/."""

from django.urls import path

from validibot.operations import trigger

urlpatterns = [
    path(
        "api/v1/scheduled/<str:task_id>/",
        trigger.trigger_scheduled_task,
        name="scheduled-task-trigger",
    ),
    path(
        "api/v1/scheduled/<str:task_id>/runs/<str:run_id>/",
        trigger.scheduled_task_run,
        name="scheduled-task-run",
    ),
]
