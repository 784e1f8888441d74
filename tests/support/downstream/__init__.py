"""A downstream package, written exactly as one for upstream Validibot would be.

It knows only upstream's documented API: ``validibot.core.tasks.registry`` and a Celery
``@shared_task`` wrapping its own management command. The tests install it with
``DJANGO_SETTINGS_MODULE=tests.support.downstream.settings`` (Django processes: its
``AppConfig.ready()`` registers the task) and reach it through the ``validibot.scheduled_tasks``
entry-point group or ``VALIDIBOT_TASK_MODULES=tests.support.downstream.scheduled:register_tasks``
(the code location, which never sets Django up).
"""
