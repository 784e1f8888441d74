"""Outcome checks as Dagster asset checks: generated per task, judged, run in each task run,
alerting.

Real Dagster instances (``instance_for_test``), real runs (``execute_in_process``), real sensor
ticks (``build_sensor_context``) and real rows (factories). Only the clock the checks read is
a test seam, so "a day later" needs no sleeping.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field, replace
from datetime import timedelta

import dagster as dg
import pytest
from django.utils import timezone

from tests.factories import SubmissionFactory
from tests.support.dagster_stack import REPO_ROOT, VENV_BIN
from tests.support.testapp.task_definitions import TEST_TASKS
from validibot.tasks.outcomes import COUNT, OutcomeCheck
from validibot.tasks.registry import BUILTIN_TASKS, MaintenanceTask, get_task, register
from validibot_ops import alerts, checks
from validibot_ops.definitions import build_definitions
from validibot_ops.ops import task_asset_key
from validibot_ops.resources import DjangoResource
from validibot_ops.tags import ASSET_PREFIX, TASK_TAG

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
DJANGO = DjangoResource(settings_module="config.settings.test")

NO_CHECKS = {
    "verify_validator_deployments": "probes remote deployments; it keeps no rows to check",
    "cleanup_orphaned_containers": "its state is Docker's containers, not database rows",
    "send_periodic_emails": "sends mail; nothing is left behind to be clean or not",
    "prune_dagster_history": "its rows are Dagster's; its outcome is the storage figure in bench/",
}
"""Tasks with no outcome check, and why."""


# -- generated for every task ----------------------------------------------------------------

DEFS = build_definitions()
REPO = DEFS.get_repository_def()


@pytest.mark.parametrize("task", BUILTIN_TASKS, ids=lambda t: t.id)
def test_every_task_has_its_declared_checks_on_its_asset(task: MaintenanceTask):
    if not task.outcome_checks:
        assert task.id in NO_CHECKS, f"{task.id}: declare an outcome check or say why not"
        return
    graph = REPO.asset_graph
    declared = {dg.AssetCheckKey(task_asset_key(task), c.name) for c in task.outcome_checks}
    assert declared <= set(graph.asset_check_keys)
    everything = DEFS.resolve_job_def(checks.ALL_CHECKS_JOB)
    assert declared <= set(everything.asset_layer.asset_graph.asset_check_keys)
    assert everything.tags[checks.CHECKS_TAG] == "all"
    assert TASK_TAG not in everything.tags, "a check run must never count as a run of the task"


def test_the_checks_have_their_schedule_and_sensor_running_by_default():
    schedule = DEFS.resolve_schedule_def(checks.ALL_CHECKS_SCHEDULE)
    assert schedule.job_name == checks.ALL_CHECKS_JOB
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    sensor = DEFS.resolve_sensor_def(checks.ALERT_SENSOR)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_a_disabled_task_keeps_its_checks():
    task = replace(get_task("purge_expired_submissions"), enabled=False)
    built = checks.build_outcome_checks([task])
    assert set(built.checks) == {checks.check_key(task, c) for c in task.outcome_checks}


def test_a_bad_check_declaration_names_the_entry():
    bad = OutcomeCheck(name="Bad-Name", query="x", description="", warn_above=5, error_above=1)
    with pytest.raises(ValueError, match="test_bad_check") as info:
        register(MaintenanceTask(
            id="test_bad_check", name="t", command="noop_task", cron="* * * * *",
            outcome_checks=(bad,),
        ))  # fmt: skip
    assert "must match" in str(info.value)


@pytest.mark.subprocess
def test_definitions_with_checks_load_without_django_or_a_database():
    code = (
        "import sys, validibot_ops.definitions as d;"
        "import django.apps;"
        "assert not django.apps.apps.ready, 'django.setup() ran at import';"
        "assert 'django.db.models' not in sys.modules, 'the ORM was imported';"
        "print(len(d.defs.get_repository_def().asset_graph.asset_check_keys))"
    )
    env = {"PATH": str(VENV_BIN), "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) == sum(len(t.outcome_checks) for t in BUILTIN_TASKS)


# -- running them -----------------------------------------------------------------------------


@dataclass
class Clock:
    now: object = field(default_factory=timezone.now)

    def __call__(self):
        return self.now


def _check_defs(tasks, clock) -> dg.Definitions:
    return dg.Definitions.merge(
        dg.Definitions(
            assets=[dg.AssetSpec(task_asset_key(t), group_name=ASSET_PREFIX) for t in tasks],
            resources={"django": DJANGO},
        ),
        checks.build_check_definitions(tasks, clock=clock),
    )


def _run_checks(defs, task, instance) -> list[dg.AssetCheckEvaluation]:
    """The hourly job, in a definitions object that holds ``task`` alone."""
    job = defs.resolve_job_def(checks.ALL_CHECKS_JOB)
    result = job.execute_in_process(instance=instance, run_config=QUIET)
    assert result.success, "a check's verdict never fails its step"
    return result.get_asset_check_evaluations()


class Ticker:
    """Evaluates one sensor tick after another, carrying the cursor like the daemon does."""

    def __init__(self, sensor: dg.SensorDefinition, instance, defs=None) -> None:
        self.sensor, self.instance, self.defs, self.cursor = sensor, instance, defs, None

    def tick(self) -> dg.SensorExecutionData:
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources={"django": DJANGO},
            definitions=self.defs,
        )
        with context:
            data = self.sensor.evaluate_tick(context)
        self.cursor = data.cursor
        return data


@dataclass
class DeliverySpy:
    """Records every alert the real ``deliver`` sends from the checks' sensor."""

    alerts: list[alerts.Alert] = field(default_factory=list)


@pytest.fixture
def delivered(monkeypatch) -> DeliverySpy:
    spy = DeliverySpy()
    real = alerts.deliver

    def recording(alert, channels, log=None):
        spy.alerts.append(alert)
        return real(alert, channels, log)

    monkeypatch.setattr(checks, "deliver", recording)
    return spy


@pytest.mark.django_db(transaction=True)
def test_a_disabled_purge_with_expired_rows_turns_warn_then_error_alerts_once_then_recovers(
    delivered,
):
    task = replace(get_task("purge_expired_submissions"), enabled=False)
    clock = Clock()
    SubmissionFactory.create_batch(3, expires_at=clock.now - timedelta(hours=3))
    SubmissionFactory(expires_at=clock.now + timedelta(days=1))
    defs = _check_defs([task], clock)
    with dg.instance_for_test() as instance:
        alert_sensor = Ticker(defs.resolve_sensor_def(checks.ALERT_SENSOR), instance)
        assert "failing 0" in alert_sensor.tick().skip_message

        [warn] = _run_checks(defs, task, instance)
        assert (warn.passed, warn.severity) == (False, dg.AssetCheckSeverity.WARN)
        assert warn.metadata["count"] == dg.MetadataValue.int(3)
        assert warn.metadata["oldest_overdue_hours"].value == pytest.approx(1.0, abs=0.01)
        alert_sensor.tick()
        alert_sensor.tick()

        clock.now += timedelta(days=1)  # nobody purged for a day
        [error] = _run_checks(defs, task, instance)
        assert (error.passed, error.severity) == (False, dg.AssetCheckSeverity.ERROR)
        assert error.metadata["oldest_overdue_hours"].value == pytest.approx(25.0, abs=0.01)
        assert "failing 1, raised 0" in alert_sensor.tick().skip_message
        assert [(a.kind, a.status) for a in delivered.alerts] == [(checks.CHECK_FAILED, "WARN")]
        assert "expired_content_kept" in delivered.alerts[0].summary

        purge = DEFS.resolve_job_def(task.id).execute_in_process(
            instance=instance, run_config=QUIET
        )
        assert purge.success
        [ok] = purge.get_asset_check_evaluations()  # judged in the purge's own run
        assert ok.passed
        assert ok.metadata["count"] == dg.MetadataValue.int(0)
        assert "cleared 1" in alert_sensor.tick().skip_message
        alert_sensor.tick()
    assert [a.status for a in delivered.alerts] == ["WARN", "RECOVERED"]
    assert delivered.alerts[1].kind == alerts.RECOVERED


def broken_query(now, grace):
    raise RuntimeError("could not connect to server: Connection refused")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("query", "reason"),
    [
        (f"{__name__}.broken_query", "RuntimeError: could not connect to server"),
        ("validibot.nowhere.query", "cannot load outcome query 'validibot.nowhere.query'"),
    ],
)
def test_a_failing_query_reports_error_with_the_reason(query, reason, delivered):
    check = OutcomeCheck(name="broken", query=query, description="d", measure=COUNT)
    task = MaintenanceTask(
        id="test_broken_check", name="t", command="noop_task", cron="* * * * *",
        outcome_checks=(check,),
    )  # fmt: skip
    defs = _check_defs([task], Clock())
    with dg.instance_for_test() as instance:
        [evaluation] = _run_checks(defs, task, instance)
        Ticker(defs.resolve_sensor_def(checks.ALERT_SENSOR), instance).tick()
    assert (evaluation.passed, evaluation.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert reason in evaluation.description
    assert reason in evaluation.metadata["error"].value
    [alert] = delivered.alerts
    assert alert.status == "ERROR" and reason in alert.error


@pytest.mark.django_db(transaction=True)
def test_each_run_of_a_task_judges_its_checks_in_the_run_itself_success_or_failure():
    """No second run: the task's op logs its checks' verdicts after the command, also when
    the command failed, and the latest execution of each check is that run's."""
    noop = replace(TEST_TASKS[0], outcome_checks=get_task("clear_sessions").outcome_checks)
    failing = replace(TEST_TASKS[2], outcome_checks=noop.outcome_checks, max_retries=0)
    register(noop)
    register(failing)
    defs = build_definitions()
    with dg.instance_for_test() as instance:
        for task in (noop, failing):
            run = defs.resolve_job_def(task.id).execute_in_process(
                instance=instance, run_config=QUIET, raise_on_error=False
            )
            assert run.success is (task is noop)
            [evaluation] = run.get_asset_check_evaluations()
            assert evaluation.passed, evaluation.description
            assert evaluation.check_name == "expired_rows_kept"
            key = checks.check_key(task, task.outcome_checks[0])
            latest = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])
            assert latest[key].run_id == run.run_id
        assert instance.get_runs_count(dg.RunsFilter(tags={checks.CHECKS_TAG: "all"})) == 0


def test_the_operations_guide_lists_every_check_as_declared():
    text = (REPO_ROOT / "docs" / "operations.md").read_text()
    start, end = "<!-- outcome-checks-table -->", "<!-- /outcome-checks-table -->"
    table, after = text.split(start)[1].split(end)
    documented = table.strip().splitlines()[2:]
    declared = [
        f"| `{t.id}` | `{c.name}` | {c.description} | {c.grace_text} | `{c.measure}` | "
        f"{c.bounds_text} |"
        for t in BUILTIN_TASKS
        for c in t.outcome_checks
    ]
    assert documented == declared
    for task_id in NO_CHECKS:
        assert f"`{task_id}`" in after[:600], f"say why {task_id} has no check"


def interrupted_query(now, grace):
    raise KeyboardInterrupt  # what a check run killed mid-query looks like to its step


@pytest.mark.django_db(transaction=True)
def test_a_check_run_that_ended_without_a_result_alerts_error(delivered):
    check = OutcomeCheck(name="cut", query=f"{__name__}.interrupted_query", description="d")
    task = MaintenanceTask(
        id="test_cut_check", name="t", command="noop_task", cron="* * * * *",
        outcome_checks=(check,),
    )  # fmt: skip
    defs = _check_defs([task], Clock())
    with dg.instance_for_test() as instance:
        job = defs.resolve_job_def(checks.ALL_CHECKS_JOB)
        result = job.execute_in_process(instance=instance, run_config=QUIET, raise_on_error=False)
        assert not result.success
        assert result.get_asset_check_evaluations() == []
        Ticker(defs.resolve_sensor_def(checks.ALERT_SENSOR), instance).tick()
    [alert] = delivered.alerts
    assert alert.status == "ERROR"
    assert f"check run {result.run_id} ended" in alert.error
