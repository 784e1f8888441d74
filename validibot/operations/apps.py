"""App config for validibot.operations: the Django side that talks to Dagster."""

from django.apps import AppConfig


class OperationsConfig(AppConfig):
    """GraphQL client, HTTP trigger, sync_schedules, doctor and scheduled_task_status."""

    name = "validibot.operations"
    label = "operations"
    verbose_name = "Validibot operations (Dagster)"
