"""The downstream app's config: registers its scheduled task, as upstream's guide says."""

from django.apps import AppConfig


class DownstreamConfig(AppConfig):
    name = "tests.support.downstream"
    label = "downstream"

    def ready(self) -> None:
        from tests.support.downstream.scheduled import register_tasks

        register_tasks()
