"""The operator guide's manual path: upstream's Celery tasks, called directly, run now."""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery import Task

from tests.factories import SubmissionFactory
from tests.validibot.conftest import NOW
from validibot.core.celery_tasks import find_task
from validibot.core.tasks import scheduled_tasks
from validibot.core.tasks.scheduled_tasks import LaunchedRun
from validibot.tasks.registry import BUILTIN_TASKS


@pytest.mark.parametrize("task", BUILTIN_TASKS, ids=lambda t: t.id)
def test_one_celery_task_per_builtin_under_upstreams_names(task):
    function = getattr(scheduled_tasks, task.id)
    assert isinstance(function, Task)
    assert function.name == task.celery_task == f"validibot.{task.id}"
    assert find_task(task.celery_task).run.__name__ == task.id  # the same function, by name
    assert task.id in scheduled_tasks.__all__


@pytest.mark.django_db
def test_the_guides_test_recipe_passes_and_the_command_ran():
    from validibot.core.tasks.scheduled_tasks import purge_expired_submissions

    submission = SubmissionFactory(expires_at=NOW - timedelta(hours=1))
    result = purge_expired_submissions()

    assert result["status"] == "completed"
    assert set(result) >= {"status", "command", "output", "timestamp", "summary"}
    assert result["command"] == "purge_expired_submissions"
    assert result["summary"]["counts"]["purged"] == 1
    assert '"task": "purge_expired_submissions"' in result["output"]
    submission.refresh_from_db()
    assert submission.content_purged_at == NOW


@pytest.mark.django_db
def test_a_dry_run_changes_nothing():
    submission = SubmissionFactory(expires_at=NOW - timedelta(hours=1))
    result = scheduled_tasks.purge_expired_submissions(dry_run=True)
    assert result["summary"]["dry_run"] is True
    submission.refresh_from_db()
    assert submission.content_purged_at is None


def test_delay_names_the_run_it_launched():
    run = LaunchedRun(id="0f1e", task="clear_sessions", url="http://dagster/runs/0f1e")
    assert str(run) == "Dagster run 0f1e of clear_sessions: http://dagster/runs/0f1e"
