"""Every job, executed in-process against real seeded rows: rows change as the summary says."""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg
import pytest
from django.contrib.sessions.models import Session
from django.core.management import call_command

from validibot.audit.models import AuditLogEntry
from validibot.idp.models import OIDCClient
from validibot.operations.models import IdempotencyKey
from validibot.retention.models import PurgeRetry
from validibot.submissions.models import Submission
from validibot.tasks.registry import BACKEND_DAGSTER, BUILTIN_TASKS, register
from validibot.validations.models import CallbackReceipt, RunStatus, ValidationOutput, ValidationRun
from validibot_ops.definitions import build_definitions
from validibot_ops.ops import task_asset_key

pytestmark = pytest.mark.django_db(transaction=True)

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}

# task id -> (a measure of the rows the task acts on, the summary count that must match the
# change in that measure)
MEASURES: dict[str, tuple[Callable[[], int], str]] = {
    "purge_expired_submissions": (
        lambda: Submission.objects.filter(content_purged_at__isnull=False).count(),
        "purged",
    ),
    "purge_expired_outputs": (
        lambda: ValidationOutput.objects.filter(content_purged_at__isnull=False).count(),
        "purged",
    ),
    "process_purge_retries": (lambda: -PurgeRetry.objects.count(), "succeeded"),
    "cleanup_stuck_runs": (
        lambda: ValidationRun.objects.filter(status=RunStatus.TIMED_OUT).count(),
        "timed_out",
    ),
    "cleanup_idempotency_keys": (lambda: -IdempotencyKey.objects.count(), "deleted"),
    "cleanup_callback_receipts": (lambda: -CallbackReceipt.objects.count(), "deleted"),
    "clear_sessions": (lambda: -Session.objects.count(), "deleted"),
    "enforce_audit_retention": (lambda: -AuditLogEntry.objects.count(), "deleted"),
    "purge_stale_oidc_clients": (lambda: -OIDCClient.objects.count(), "deleted"),
}


def _run(job_name: str, instance, config: dict | None = None) -> dg.ExecuteInProcessResult:
    run_config = dict(QUIET)
    if config:
        run_config["ops"] = {job_name: {"config": config}}
    job = build_definitions().resolve_job_def(job_name)
    return job.execute_in_process(instance=instance, run_config=run_config, raise_on_error=False)


@pytest.fixture
def seeded(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    call_command("seed_demo_data", "--no-files", stdout=open("/dev/null", "w"))  # noqa: SIM115


def test_the_measures_cover_every_task_that_changes_rows():
    # prune_dagster_history changes Dagster's storage over GraphQL, measured against a real
    # webserver in tests/integration/dagster/test_prune_history.py.
    others = {"send_periodic_emails", "cleanup_orphaned_containers", "prune_dagster_history"}
    assert set(MEASURES) | others == {t.id for t in BUILTIN_TASKS if BACKEND_DAGSTER in t.backends}


@pytest.mark.parametrize("task_id", sorted(MEASURES))
def test_each_job_changes_exactly_the_rows_its_summary_reports(seeded, task_id):
    measure, count_name = MEASURES[task_id]
    with dg.instance_for_test() as instance:
        before = measure()
        dry = _run(task_id, instance, {"dry_run": True})
        assert dry.success
        assert measure() == before, "a dry run changed rows"
        would = dry.output_for_node(task_id)["counts"][count_name]

        result = _run(task_id, instance)
        assert result.success
        summary = result.output_for_node(task_id)
        changed = summary["counts"][count_name]
        assert changed > 0, f"seed_demo_data should give {task_id} work to do"
        assert measure() - before == changed
        assert would == changed, "the dry run predicted a different count"

        # Counts reach the UI: output metadata and a materialization of the task's asset.
        [mat] = result.get_asset_materialization_events()
        assert mat.asset_key == task_asset_key(next(t for t in BUILTIN_TASKS if t.id == task_id))
        assert mat.materialization.metadata[count_name].value == changed
        # The dry run was recorded as an observation, not a materialization.
        observations = instance.fetch_observations(mat.asset_key, limit=10).records
        assert len(observations) == 1

        again = _run(task_id, instance)
        assert again.success
        assert again.output_for_node(task_id)["counts"][count_name] == 0


def test_periodic_emails_without_handlers_is_a_successful_no_op(seeded):
    with dg.instance_for_test() as instance:
        result = _run("send_periodic_emails", instance)
    assert result.success
    assert result.output_for_node("send_periodic_emails")["counts"]["handlers"] == 0


def test_container_cleanup_without_an_engine_succeeds_and_says_so(seeded, monkeypatch):
    monkeypatch.setenv("VALIDIBOT_DOCKER_URL", "unix:///nonexistent/docker.sock")
    with dg.instance_for_test() as instance:
        result = _run("cleanup_orphaned_containers", instance)
    assert result.success
    assert (
        result.output_for_node("cleanup_orphaned_containers")["counts"]["engine_unreachable"] == 1
    )


def _events(instance, run_id: str, event_type: dg.DagsterEventType):
    return [
        record.event_log_entry
        for record in instance.get_records_for_run(run_id, of_type=event_type).records
    ]


@pytest.fixture
def test_tasks():
    """Register the test-only tasks (the autouse registry reset removes them afterwards)."""
    from tests.support.testapp.task_definitions import TEST_TASKS

    for task in TEST_TASKS:
        register(task)


def test_a_failed_summary_fails_the_op_and_is_retried_by_policy(test_tasks):
    with dg.instance_for_test() as instance:
        result = _run("test_always_fail", instance)
        assert not result.success
        failures = _events(instance, result.run_id, dg.DagsterEventType.STEP_FAILURE)
        restarts = _events(instance, result.run_id, dg.DagsterEventType.STEP_RESTARTED)
    assert len(restarts) == 1  # max_retries=1 in the test registry entry
    assert len(failures) == 1
    error = failures[0].dagster_event.step_failure_data.user_failure_data.description
    assert "storage backend refused the request" in error


def test_a_command_that_cannot_start_fails_at_once_without_retries(test_tasks):
    with dg.instance_for_test() as instance:
        result = _run("test_always_fail", instance, {"extra_args": ["--batch-size", "-5"]})
        assert not result.success
        restarts = _events(instance, result.run_id, dg.DagsterEventType.STEP_RESTARTED)
        failures = _events(instance, result.run_id, dg.DagsterEventType.STEP_FAILURE)
    assert restarts == []
    error = failures[0].dagster_event.step_failure_data.user_failure_data.description
    assert "test_always_fail" in error and "batch-size" in error


def test_command_output_is_streamed_into_the_dagster_log(seeded):
    with dg.instance_for_test() as instance:
        result = _run("clear_sessions", instance)
        messages = [
            entry.user_message
            for entry in instance.all_logs(result.run_id)
            if entry.dagster_event is None
        ]
    assert any(m.startswith("running manage.py clear_sessions") for m in messages)
    assert any('"task": "clear_sessions"' in m for m in messages)
