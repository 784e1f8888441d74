"""The code location mirrors the registry, entry for entry, and loads without Django."""

from __future__ import annotations

import subprocess
import sys

import dagster as dg
import pytest

from tests.support.dagster_stack import REPO_ROOT, VENV_BIN
from validibot.tasks.registry import BACKEND_DAGSTER, BUILTIN_TASKS, MaintenanceTask
from validibot_ops.definitions import build_definitions
from validibot_ops.jobs import STOP_MARGIN_SECONDS
from validibot_ops.ops import task_asset_key
from validibot_ops.tags import CELERY_QUEUE_TAG, MAX_RUNTIME_TAG, TASK_TAG

DEFS = build_definitions()
# The tasks the code location schedules. A GCP-only task (verify_validator_deployments) is not
# among them; its job-without-schedule is the hardening issue's (#15) rule.
DAGSTER_TASKS = tuple(t for t in BUILTIN_TASKS if BACKEND_DAGSTER in t.backends)


@pytest.mark.parametrize("task", DAGSTER_TASKS, ids=lambda t: t.id)
def test_every_registry_entry_has_a_matching_job(task: MaintenanceTask):
    job = DEFS.resolve_job_def(task.id)
    assert [node.name for node in job.nodes_in_topological_order] == [task.id]
    assert job.tags[TASK_TAG] == task.id
    assert job.tags[CELERY_QUEUE_TAG] == task.queue
    assert job.tags[MAX_RUNTIME_TAG] == str(task.hard_time_limit_seconds + STOP_MARGIN_SECONDS)

    op_def = job.graph.node_named(task.id).definition
    assert op_def.tags[CELERY_QUEUE_TAG] == task.queue
    policy = op_def.retry_policy
    assert policy is not None
    assert policy.max_retries == task.max_retries
    assert policy.delay == task.retry_delay_seconds
    assert policy.backoff == dg.Backoff.EXPONENTIAL
    assert policy.jitter == dg.Jitter.PLUS_MINUS


@pytest.mark.parametrize("task", DAGSTER_TASKS, ids=lambda t: t.id)
def test_every_registry_entry_has_a_matching_schedule(task: MaintenanceTask):
    schedule = DEFS.resolve_schedule_def(task.schedule_name)
    assert schedule.job_name == task.id
    assert schedule.cron_schedule == task.cron
    assert schedule.execution_timezone == task.timezone
    expected = (
        dg.DefaultScheduleStatus.RUNNING if task.enabled else dg.DefaultScheduleStatus.STOPPED
    )
    assert schedule.default_status == expected


def test_container_cleanup_is_routed_to_the_docker_queue():
    job = DEFS.resolve_job_def("cleanup_orphaned_containers")
    assert (
        job.graph.node_named("cleanup_orphaned_containers").definition.tags[CELERY_QUEUE_TAG]
        == "docker"
    )


def test_each_task_has_a_documented_asset_for_its_counts():
    specs = {spec.key: spec for spec in DEFS.assets}
    for task in DAGSTER_TASKS:
        assert task_asset_key(task) in specs
        assert task.id in specs[task_asset_key(task)].description


def test_a_disabled_task_gets_a_stopped_schedule(monkeypatch):
    from validibot.tasks.registry import register

    register(
        MaintenanceTask(
            id="paused_example",
            name="Paused",
            command="noop_task",
            cron="0 3 * * *",
            enabled=False,
        )
    )
    schedule = build_definitions().resolve_schedule_def("paused_example_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED


def test_a_gcp_only_task_gets_a_job_but_no_schedule():
    """Issue 15 D7: Cloud Scheduler triggers a gcp-only task over HTTP, which launches its
    job; without a job every trigger answered 503 forever. Dagster itself never schedules it."""
    from validibot.tasks.registry import register

    register(
        MaintenanceTask(
            id="gcp_only_example",
            name="GCP only",
            command="noop_task",
            cron="0 3 * * *",
            backends=frozenset({"gcp"}),
        )
    )
    defs = build_definitions()
    job = defs.resolve_job_def("gcp_only_example")
    assert job.tags[TASK_TAG] == "gcp_only_example"
    schedules = {s.name for s in defs.schedules}
    assert "gcp_only_example_schedule" not in schedules
    assert "clear_sessions_schedule" in schedules  # the dagster-backend tasks keep theirs


def test_a_registry_cron_dagster_refuses_names_the_entry():
    """Issue 15 D8: croniter accepts "0 0 31 2 *" (it never fires); Dagster does not. The code
    location refuses it at load, naming the registry entry, before any schedule exists."""
    from validibot.tasks.registry import register
    from validibot_ops.schedules import ScheduleDefinitionError

    register(MaintenanceTask(id="feb_31", name="Never", command="noop_task", cron="0 0 31 2 *"))
    with pytest.raises(ScheduleDefinitionError) as refused:
        build_definitions()
    assert "scheduled task 'feb_31' (registry entry): cron '0 0 31 2 *'" in str(refused.value)
    assert "invalid cron schedule" in str(refused.value)  # Dagster's own words follow


@pytest.mark.subprocess
def test_loading_definitions_sets_up_no_django_and_opens_no_database():
    """Webserver and `definitions validate` load the module: no ORM, no connection."""
    code = (
        "import sys, validibot_ops.definitions as d;"
        "import django.apps;"
        "assert not django.apps.apps.ready, 'django.setup() ran at import';"
        "assert 'django.db.models' not in sys.modules, 'the ORM was imported';"
        "print(len(list(d.defs.resolve_all_job_defs())))"
    )
    env = {"PATH": str(VENV_BIN), "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) >= len(BUILTIN_TASKS)


@pytest.mark.subprocess
def test_dagster_definitions_validate_passes(tmp_path):
    # DAGSTER_HOME is set so the check never touches the checkout's own instance.
    result = subprocess.run(
        [str(VENV_BIN / "dagster"), "definitions", "validate", "-m", "validibot_ops.definitions"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": str(VENV_BIN), "HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful" in result.stdout + result.stderr


def test_the_celery_executor_is_chosen_from_the_environment(monkeypatch):
    from validibot_ops import executors

    monkeypatch.delenv("VALIDIBOT_EXECUTOR", raising=False)
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert executors.executor_kind() == "in_process"
    monkeypatch.setenv("REDIS_URL", "redis://:s3cret@127.0.0.1:6379/0")
    # With a broker, the default run mode is warm: runs execute inside the workers with the
    # in-process executor; celery-executor mode (or VALIDIBOT_EXECUTOR=celery) steps out.
    monkeypatch.delenv("VALIDIBOT_RUN_MODE", raising=False)
    assert executors.run_mode() == "warm"
    assert executors.executor_kind() == "in_process"
    monkeypatch.setenv("VALIDIBOT_RUN_MODE", "celery-executor")
    assert executors.executor_kind() == "celery"
    config = executors.celery_executor_config()
    # URLs stay env references: a broker password never lands in run config or the UI.
    assert config["broker"] == {"env": "REDIS_URL"}
    assert "s3cret" not in repr(config)
    source = config["config_source"]
    assert source["task_acks_late"] is True
    assert source["worker_prefetch_multiplier"] == 1
    longest = max(t.hard_time_limit_seconds for t in BUILTIN_TASKS)
    assert source["broker_transport_options"]["visibility_timeout"] > longest
    monkeypatch.setenv("VALIDIBOT_EXECUTOR", "kubernetes")
    with pytest.raises(executors.ExecutorConfigError, match="kubernetes"):
        executors.executor_kind()


@pytest.mark.parametrize("task", DAGSTER_TASKS, ids=lambda t: t.id)
def test_every_count_a_command_reports_is_described_for_the_ui(task: MaintenanceTask):
    from django.core.management import get_commands, load_command_class

    command = load_command_class(get_commands()[task.command], task.command)
    described = [name for name, _text in task.count_descriptions]
    assert not command.count_names, "count names are declared once, in the registry"
    assert described == list(command.declared_counts())
    spec = {s.key: s for s in DEFS.assets}[task_asset_key(task)]
    for name in described:
        assert f"**{name}**" in spec.description


def test_a_task_whose_command_does_not_exist_stops_the_load():
    from validibot.tasks.registry import RegistryError, register

    register(
        MaintenanceTask(
            id="typo_example", name="Typo", command="purge_expired_submisions", cron="0 3 * * *"
        )
    )
    with pytest.raises(RegistryError, match="'typo_example'.*'purge_expired_submisions' not found"):
        build_definitions()


def test_commands_are_found_in_django_core_and_app_config_paths():
    from validibot_ops.commands import available_commands

    apps = [
        "validibot.core",
        "validibot.validations",
        "tests.support.testapp.apps.TestAppConfig",
        "django.contrib.sessions",
    ]
    wanted = {"clear_sessions", "noop_task", "migrate", "cleanup_orphaned_containers", "nope"}
    assert available_commands(apps, wanted) == wanted - {"nope"}
