"""The task registry: its promises tested over every entry, validation, registration, plugins."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.management import get_commands

from tests.factories import IdempotencyKeyFactory
from tests.validibot.conftest import NOW
from validibot.core.runner import run_task_command
from validibot.operations.models import IdempotencyKey
from validibot.tasks.registry import (
    BUILTIN_TASKS,
    TASK_MODULES_ENV,
    MaintenanceTask,
    RegistryError,
    get_enabled_tasks,
    get_task,
    get_tasks,
    get_tasks_for_backend,
    register,
    reset_registry_for_tests,
)

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DAGSTER_NAME = re.compile(r"^[A-Za-z0-9_]+$")
PLUGIN_MODULE = "tests.validibot.tasks.downstream_tasks"

# The table, retyped on purpose: the registry must match what operators were promised.
EXPECTED = {
    "purge_expired_submissions": ("purge_expired_submissions", "0 * * * *"),
    "purge_expired_outputs": ("purge_expired_outputs", "*/5 * * * *"),
    "process_purge_retries": ("process_purge_retries", "*/5 * * * *"),
    "cleanup_stuck_runs": ("cleanup_stuck_runs", "*/10 * * * *"),
    "cleanup_orphaned_containers": ("cleanup_orphaned_containers", "*/10 * * * *"),
    "cleanup_idempotency_keys": ("cleanup_idempotency_keys", "0 3 * * *"),
    "cleanup_callback_receipts": ("cleanup_callback_receipts", "0 4 * * 0"),
    "clear_sessions": ("clear_sessions", "0 2 * * *"),
    "send_periodic_emails": ("send_periodic_emails", "0 */6 * * *"),
    "verify_validator_deployments": ("verify_validator_deployments", "17 * * * *"),
    "enforce_audit_retention": ("enforce_audit_retention", "30 2 * * *"),
    "purge_stale_oidc_clients": ("purge_stale_oidc_clients", "15 4 * * *"),
    "prune_dagster_history": ("prune_dagster_history", "45 3 * * *"),
}

TASKS = get_tasks()


def task(**changes) -> MaintenanceTask:
    base = MaintenanceTask(
        id="partner_digest", name="Partner digest", command="send_periodic_emails", cron="0 6 * * *"
    )
    return dataclasses.replace(base, **changes)


def test_registry_holds_the_promised_tasks():
    assert {t.id: (t.command, t.cron) for t in get_tasks()} == EXPECTED
    assert get_tasks() == BUILTIN_TASKS


@pytest.mark.parametrize("entry", TASKS, ids=[t.id for t in TASKS])
def test_every_entry_is_valid_and_named_for_dagster(entry):
    entry.validate()
    assert DAGSTER_NAME.match(entry.id)
    assert DAGSTER_NAME.match(entry.schedule_name)
    assert entry.schedule_name == f"{entry.id}_schedule"
    assert entry.api_path == f"/api/v1/scheduled/{entry.id}/"
    assert (entry.soft_time_limit_seconds, entry.hard_time_limit_seconds) == (25 * 60, 30 * 60)
    assert get_task(entry.id) is entry


@pytest.mark.subprocess
@pytest.mark.parametrize("entry", TASKS, ids=[t.id for t in TASKS])
def test_every_entry_command_exists_and_its_help_works(entry):
    assert entry.command in get_commands()

    result = subprocess.run(
        [sys.executable, "manage.py", entry.command, "--help"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"DJANGO_SETTINGS_MODULE": "config.settings.test", "PATH": "/usr/bin:/bin"},
    )

    assert result.returncode == 0, result.stderr
    assert f"manage.py {entry.command}" in result.stdout
    for option in ("--dry-run", "--batch-size", "--max-batches"):
        assert option in result.stdout


# prune_dagster_history needs a Dagster webserver to talk to; its summary is asserted against a
# real one in tests/integration/dagster/test_prune_history.py.
NEEDS_DAGSTER = {"prune_dagster_history"}
LOCAL_TASKS = [t for t in TASKS if t.id not in NEEDS_DAGSTER]


@pytest.mark.django_db
@pytest.mark.parametrize("dry_run", [False, True], ids=["real", "dry-run"])
@pytest.mark.parametrize("entry", LOCAL_TASKS, ids=[t.id for t in LOCAL_TASKS])
def test_every_entry_prints_a_json_summary(entry, dry_run, settings, tmp_path):
    settings.VALIDIBOT_DOCKER_URL = f"unix://{tmp_path}/no-docker.sock"
    lines: list[str] = []

    summary = run_task_command(entry, ["--dry-run"] if dry_run else [], on_stdout=lines.append)

    assert json.loads(lines[-1]) == summary
    assert summary["task"] == entry.command
    assert summary["status"] == "completed"
    assert summary["dry_run"] is dry_run
    assert summary["counts"] and all(type(n) is int for n in summary["counts"].values())
    assert isinstance(summary["duration_s"], float | int) and summary["duration_s"] >= 0


def test_backends():
    gcp_only = {"verify_validator_deployments"}
    dagster_ids = {t.id for t in get_tasks_for_backend("dagster")}
    assert dagster_ids == set(EXPECTED) - gcp_only
    gcp_ids = {t.id for t in get_tasks_for_backend("gcp")}
    assert gcp_ids == set(EXPECTED) - {"cleanup_orphaned_containers", "prune_dagster_history"}
    containers = get_task("cleanup_orphaned_containers")
    assert containers.queue == "docker"
    for unknown in ("celery", "aws"):  # no AWS scheduler sync exists, so no AWS backend
        with pytest.raises(ValueError, match=f"unknown backend '{unknown}'"):
            get_tasks_for_backend(unknown)


def test_next_fire_times_honour_cron_and_timezone():
    weekly = get_task("cleanup_callback_receipts")
    assert weekly.next_fire_times(NOW) == [
        datetime(2026, 11, 29, 4, 0, tzinfo=UTC),
        datetime(2026, 12, 6, 4, 0, tzinfo=UTC),
    ]
    paris = task(cron="0 2 * * *", timezone="Europe/Paris")
    (first,) = paris.next_fire_times(NOW, count=1)
    assert first.astimezone(UTC) == datetime(2026, 11, 26, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"cron": "61 * * * *"}, "does not parse"),
        ({"cron": "* * * *"}, "must have five fields"),
        ({"cron": "every hour"}, "must have five fields"),
        ({"timezone": "Mars/Olympus_Mons"}, "not a known IANA timezone"),
        ({"id": "Partner_Digest"}, "id must match"),
        ({"id": "partner-digest"}, "id must match"),
        ({"id": "1partner"}, "id must match"),
        ({"id": "partnerDigest"}, "id must match"),
        ({"backends": frozenset({"kubernetes"})}, "backends"),
        ({"backends": frozenset()}, "backends"),
        ({"command": ""}, "a command or a celery_task is required"),
        ({"name": ""}, "name is required"),
        ({"celery_task": "not a name"}, "is not a Celery task name"),
        ({"args": ["--days", "7"]}, "args must be a tuple"),
        ({"soft_time_limit_seconds": 3600}, "time limits"),
        ({"queue": "no spaces"}, "not a valid queue name"),
    ],
)
def test_validate_rejects_a_bad_entry_naming_it(changes, problem):
    bad = task(**changes)

    with pytest.raises(RegistryError, match=re.escape(problem)) as caught:
        bad.validate()
    assert f"scheduled task {bad.id!r}" in str(caught.value)

    with pytest.raises(RegistryError, match=re.escape(repr(bad.id))):
        register(bad)
    assert get_task(bad.id) is None


def test_registered_task_is_read_through_every_accessor():
    downstream = task()
    disabled = task(id="partner_report", enabled=False, backends=frozenset({"gcp"}))

    register(downstream)
    register(disabled)

    assert get_tasks()[-2:] == (downstream, disabled)
    assert get_task("partner_digest") is downstream
    assert downstream in get_enabled_tasks()
    assert disabled not in get_enabled_tasks()
    assert disabled in get_tasks_for_backend("gcp")
    assert disabled not in get_tasks_for_backend("dagster")


def test_identical_re_registration_is_a_no_op():
    register(task())
    register(task())
    register(BUILTIN_TASKS[0])  # an equal copy of a built-in

    assert len(get_tasks()) == len(BUILTIN_TASKS) + 1


def test_conflicting_registration_raises():
    register(task())

    with pytest.raises(ValueError, match="'partner_digest' is already registered"):
        register(task(cron="0 7 * * *"))
    with pytest.raises(ValueError, match="'clear_sessions' is already registered"):
        register(task(id="clear_sessions"))
    assert get_task("partner_digest").cron == "0 6 * * *"
    assert get_task("clear_sessions").command == "clear_sessions"


def test_reset_forgets_downstream_tasks():
    register(task())

    reset_registry_for_tests()

    assert get_task("partner_digest") is None


@pytest.mark.django_db
def test_plugin_module_from_the_environment_registers_a_task_that_runs(monkeypatch, run):
    monkeypatch.setenv(TASK_MODULES_ENV, f" {PLUGIN_MODULE} ,")
    monkeypatch.delitem(sys.modules, PLUGIN_MODULE, raising=False)
    IdempotencyKeyFactory(expires_at=NOW)
    live = IdempotencyKeyFactory()

    downstream = get_task("expire_partner_keys")

    assert downstream is not None
    assert get_tasks()[-1] is downstream
    summary = run_task_command("expire_partner_keys")
    assert (summary["task"], summary["status"]) == ("cleanup_idempotency_keys", "completed")
    assert summary["counts"] == {"deleted": 1}
    assert list(IdempotencyKey.objects.values_list("pk", flat=True)) == [live.pk]


def test_unimportable_plugin_module_fails_loudly(monkeypatch):
    monkeypatch.setenv(TASK_MODULES_ENV, "validibot_partner.no_such_module")

    with pytest.raises(RegistryError, match="validibot_partner.no_such_module"):
        get_tasks()
