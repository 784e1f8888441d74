"""An upstream-shaped task (a Celery task name, no command) executed as its Dagster job.

The downstream test app (``tests.support.downstream``) is installed for each test, as its
package would be, and its ``AppConfig.ready()`` registers its task.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import dagster as dg
import pytest
from django.apps import apps
from django.contrib.sessions.models import Session
from django.db import OperationalError
from django.utils import timezone

from tests.support.downstream.scheduled import PURGE_STALE_REPORTS
from validibot.core.locks import task_lock
from validibot.core.runner import TaskFailed, run_task_command
from validibot.core.tasks.registry import register_scheduled_admin_task, reset_dynamic_tasks
from validibot.tasks.registry import RegistryError, get_task
from validibot.tasks.upstream_shape import to_task
from validibot_ops.commands import check_commands
from validibot_ops.definitions import build_definitions

pytestmark = pytest.mark.django_db(transaction=True)

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
JOB = "purge_stale_reports"


@pytest.fixture
def downstream(settings) -> Iterator[None]:
    reset_dynamic_tasks()
    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "tests.support.downstream"]
    assert apps.is_installed("tests.support.downstream")  # ready() registered its task
    yield
    reset_dynamic_tasks()


def stale_sessions(count: int) -> None:
    expired = timezone.now() - timedelta(days=8)
    for n in range(count):
        Session.objects.create(session_key=f"stale{n}", session_data="x", expire_date=expired)
    Session.objects.create(session_key="live", session_data="x", expire_date=timezone.now())


def execute(config: dict | None = None, logs: list[str] | None = None) -> dg.ExecuteInProcessResult:
    """Execute the job; ``logs`` (if given) receives the run's log messages."""
    run_config = dict(QUIET)
    if config:
        run_config["ops"] = {JOB: {"config": config}}
    job = build_definitions().resolve_job_def(JOB)
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(
            instance=instance, run_config=run_config, raise_on_error=False
        )
        if logs is not None:
            logs += [
                e.user_message for e in instance.all_logs(result.run_id) if e.dagster_event is None
            ]
        return result


def test_its_job_runs_the_celery_task_in_process_and_the_dict_is_the_summary(downstream):
    stale_sessions(2)
    logs: list[str] = []
    result = execute(logs=logs)
    assert result.success
    summary = result.output_for_node(JOB)
    assert summary["status"] == "completed"
    assert summary["command"] == "purge_stale_reports"
    assert summary["task"] == JOB and summary["dry_run"] is False
    assert list(Session.objects.values_list("session_key", flat=True)) == ["live"]
    assert any("Deleted 2 stale report(s)." in m for m in logs)
    assert any("running Celery task downstream.purge_stale_reports in-process" in m for m in logs)


def test_a_dry_run_reaches_the_function_and_changes_nothing(downstream):
    stale_sessions(1)
    result = execute({"dry_run": True})
    assert result.success
    assert result.output_for_node(JOB)["dry_run"] is True
    assert Session.objects.count() == 2


def test_extra_arguments_fail_at_once_naming_the_task(downstream):
    result = execute({"extra_args": ["--all"]})
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "'purge-stale-reports'" in failure.message or "takes no command-line arguments" in str(
        failure.event_specific_data.error
    )
    assert not [
        e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY
    ]


@pytest.mark.parametrize(
    ("celery_task", "cause"),
    [
        ("downstream.report_failure", "returned status 'failed': the report store refused"),
        ("downstream.raise_error", "raised RuntimeError: report store schema is out of date"),
    ],
)
def test_a_non_completed_status_or_an_exception_fails_the_run_without_retries(
    downstream, celery_task, cause
):
    reset_dynamic_tasks()
    register_scheduled_admin_task(replace(PURGE_STALE_REPORTS, celery_task=celery_task))
    result = execute()
    assert not result.success
    errors = [
        str(e.event_specific_data.error.message)
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.STEP_FAILURE
    ]
    assert any(cause in message for message in errors), errors
    assert not [
        e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY
    ]


def test_a_transient_error_propagates_so_the_retry_policy_applies(downstream, monkeypatch):
    import tests.support.downstream.tasks  # noqa: F401  (registers its Celery tasks)
    from validibot.core.celery_tasks import find_task

    def lost_database(dry_run: bool = False) -> dict:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(find_task("downstream.purge_stale_reports"), "run", lost_database)
    with pytest.raises(OperationalError):
        run_task_command(JOB)


def test_the_task_lock_makes_a_second_execution_busy(downstream):
    stale_sessions(1)
    with task_lock(JOB) as acquired:
        assert acquired
        assert run_task_command(JOB)["status"] == "busy"
    assert Session.objects.count() == 2
    assert run_task_command(JOB)["status"] == "completed"


def test_a_stop_request_reaches_a_maintenance_command_the_function_calls(downstream, settings):
    """Here the downstream task names one of ours (validibot.clear_sessions), whose command
    stops between batches: the run's summary is that command's, ``stopped``."""
    settings.VALIDIBOT_CLEANUP_BATCH_SIZE = 1
    reset_dynamic_tasks()
    register_scheduled_admin_task(
        replace(PURGE_STALE_REPORTS, celery_task="validibot.clear_sessions")
    )
    stale_sessions(3)
    asked: list[int] = []

    def stop_after_one_batch() -> str | None:
        asked.append(1)
        return "run canceled" if len(asked) > 1 else None

    summary = run_task_command(JOB, should_stop=stop_after_one_batch)
    assert (summary["status"], summary["reason"]) == ("stopped", "run canceled")
    assert summary["counts"]["deleted"] == 1
    assert Session.objects.count() == 3


def test_a_celery_name_no_task_carries_is_refused_at_load_naming_it(downstream):
    good = get_task(JOB)
    check_commands([good])
    bad = to_task(replace(PURGE_STALE_REPORTS, celery_task="downstream.no_such_task"))
    with pytest.raises(
        RegistryError,
        match="'purge-stale-reports': celery_task 'downstream.no_such_task' is not the name",
    ):
        check_commands([good, bad])
    with pytest.raises(TaskFailed, match="no registered Celery task has that name"):
        run_task_command(bad)
