"""Upstream's registry API at its documented path, exactly: names, shapes, accessors, refusals.

Written as a downstream package's author reads the contract (upstream-facts, "Registry API").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import replace

import pytest

import validibot.core.tasks as package
from tests.support.downstream.scheduled import PURGE_STALE_REPORTS, register_tasks
from tests.validibot.tasks.upstream_registry import UPSTREAM_TASKS
from validibot.core.tasks import registry as api
from validibot.core.tasks.registry import (
    SCHEDULED_ADMIN_TASKS,
    Backend,
    ScheduledAdminTaskDefinition,
    ScheduleType,
    get_admin_task_by_id,
    get_admin_tasks_for_backend,
    get_all_admin_tasks,
    get_enabled_admin_tasks,
    register_scheduled_admin_task,
    reset_dynamic_tasks,
)
from validibot.tasks import registry
from validibot.tasks.registry import BUILTIN_TASKS, RegistryError, get_task, get_tasks

UPSTREAM_NAMES = {
    "Backend",
    "ScheduleType",
    "ScheduledAdminTaskDefinition",
    "SCHEDULED_ADMIN_TASKS",
    "register_scheduled_admin_task",
    "get_all_admin_tasks",
    "get_admin_tasks_for_backend",
    "get_admin_task_by_id",
    "get_enabled_admin_tasks",
    "reset_dynamic_tasks",
}


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    reset_dynamic_tasks()
    yield
    reset_dynamic_tasks()


def definition(**changes) -> ScheduledAdminTaskDefinition:
    return replace(PURGE_STALE_REPORTS, **changes)


def test_every_documented_name_is_at_the_path_and_re_exported_from_the_package():
    for name in UPSTREAM_NAMES:
        assert getattr(package, name) is getattr(api, name), name


def test_the_enums_carry_upstreams_values():
    assert [b.value for b in Backend] == ["celery", "gcp", "aws", "all"]
    assert [t.value for t in ScheduleType] == ["cron", "interval"]
    assert Backend("celery") is Backend.CELERY and Backend.GCP == "gcp"


def test_the_definition_has_upstreams_fields_order_and_defaults_and_is_frozen():
    fields = [(f.name, f.default) for f in dataclasses.fields(ScheduledAdminTaskDefinition)]
    missing = dataclasses.MISSING
    assert fields == [
        ("id", missing),
        ("name", missing),
        ("celery_task", missing),
        ("api_endpoint", missing),
        ("schedule_cron", missing),
        ("schedule_interval_minutes", None),
        ("description", ""),
        ("enabled", True),
        ("backends", (Backend.ALL,)),
    ]
    positional = ScheduledAdminTaskDefinition(
        "a-b", "A b", "x.a_b", "/api/v1/scheduled/a-b/", "0 * * * *"
    )
    assert positional.job_name == "validibot-a-b"
    with pytest.raises(dataclasses.FrozenInstanceError):
        positional.name = "changed"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("backends", "asked", "expected"),
    [
        ((Backend.ALL,), "aws", True),
        ((Backend.GCP,), Backend.GCP, True),
        ((Backend.GCP,), "celery", False),
        ((Backend.CELERY,), Backend.ALL, True),
    ],
)
def test_supports_backend(backends, asked, expected):
    assert definition(backends=backends).supports_backend(asked) is expected


def test_the_static_tuple_holds_upstreams_eleven_in_upstreams_shape_then_ours():
    upstream = [d for d in SCHEDULED_ADMIN_TASKS if d.id in UPSTREAM_TASKS]
    assert [d.id for d in SCHEDULED_ADMIN_TASKS[: len(UPSTREAM_TASKS)]] == [d.id for d in upstream]
    assert {d.id: (d.schedule_cron, ",".join(b.value for b in d.backends)) for d in upstream} == (
        UPSTREAM_TASKS
    )
    for d in SCHEDULED_ADMIN_TASKS:
        assert d.celery_task == f"validibot.{d.id.replace('-', '_')}"
        assert d.api_endpoint == f"/api/v1/scheduled/{d.id}/"


def test_each_upstream_id_maps_to_the_builtin_that_runs_it_never_a_copy():
    tasks = get_tasks()
    for d in get_all_admin_tasks()[: len(UPSTREAM_TASKS)]:
        task = get_task(d.id.replace("-", "_"))
        assert task is not None and task.command, d.id
        assert get_admin_task_by_id(d.id) == d
    assert len({t.id for t in tasks}) == len(tasks) == len(get_all_admin_tasks())


def test_a_registered_task_appears_in_both_shapes_after_the_builtins():
    register_scheduled_admin_task(PURGE_STALE_REPORTS)

    assert get_all_admin_tasks()[-1] is PURGE_STALE_REPORTS
    assert get_admin_task_by_id("purge-stale-reports") is PURGE_STALE_REPORTS
    assert get_admin_task_by_id("purge_stale_reports") is PURGE_STALE_REPORTS
    ours = get_tasks()[-1]
    assert (ours.id, ours.cron, ours.celery_task, ours.command) == (
        "purge_stale_reports",
        "20 * * * *",
        "downstream.purge_stale_reports",
        "",
    )
    assert ours.api_path == "/api/v1/scheduled/purge-stale-reports/"
    assert (ours.max_retries, ours.outcome_checks, ours.queue) == (3, (), "default")
    assert ours.backends == frozenset({"dagster", "gcp"})


def test_registration_order_is_kept():
    second = definition(id="second-task", api_endpoint="", celery_task="x.second")
    register_scheduled_admin_task(second)
    register_scheduled_admin_task(PURGE_STALE_REPORTS)
    assert [d.id for d in get_all_admin_tasks()[-2:]] == ["second-task", "purge-stale-reports"]


def test_a_duplicate_id_raises_value_error_naming_it_even_when_identical():
    register_scheduled_admin_task(PURGE_STALE_REPORTS)
    for again in (PURGE_STALE_REPORTS, definition(name="Other")):
        with pytest.raises(
            ValueError, match="^Scheduled admin task already registered: purge-stale-reports$"
        ):
            register_scheduled_admin_task(again)


def test_a_builtin_id_is_a_duplicate():
    with pytest.raises(ValueError, match="already registered: clear-sessions"):
        register_scheduled_admin_task(definition(id="clear-sessions", api_endpoint=""))


def test_two_ids_that_become_one_job_name_are_refused_naming_both():
    register_scheduled_admin_task(PURGE_STALE_REPORTS)
    with pytest.raises(RegistryError, match="'purge-stale-reports' and 'purge_stale_reports'"):
        register_scheduled_admin_task(definition(id="purge_stale_reports", api_endpoint=""))


def test_ready_and_the_entry_point_reaching_one_register_function_is_harmless(monkeypatch):
    """A Dagster worker loads the plugin (entry point) and then sets Django up (ready()):
    both run ``register_tasks``; the second is not a duplicate."""
    monkeypatch.setenv(
        registry.TASK_MODULES_ENV, "tests.support.downstream.scheduled:register_tasks"
    )
    assert get_task("purge_stale_reports") is not None  # the plugin loader registered it
    register_tasks()  # AppConfig.ready()
    with pytest.raises(ValueError, match="already registered"):
        register_tasks()  # a third time is a real duplicate
    assert [t.id for t in get_tasks()].count("purge_stale_reports") == 1


@pytest.mark.parametrize(
    ("changes", "cause"),
    [
        ({"schedule_cron": "61 * * * *"}, "schedule_cron '61 \\* \\* \\* \\*' does not parse"),
        ({"schedule_cron": "", "schedule_interval_minutes": 7}, "7 has no exact cron"),
        ({"schedule_cron": "", "schedule_interval_minutes": 0}, "must be a whole number >= 1"),
        ({"schedule_cron": ""}, "schedule_cron or schedule_interval_minutes is required"),
        ({"backends": ("azure",)}, "unknown backend 'azure'"),
        ({"backends": "celery"}, "must be a non-empty tuple"),
        ({"celery_task": ""}, "celery_task is required"),
        ({"celery_task": "not a name"}, "is not a Celery task name"),
        ({"api_endpoint": "/elsewhere/"}, "api_endpoint '/elsewhere/' is not served"),
        ({"id": "Purge Reports"}, "id must be lowercase"),
        ({"name": ""}, "name is required"),
    ],
)
def test_a_bad_definition_is_refused_naming_the_task_and_the_cause(changes, cause):
    bad = definition(**changes)
    with pytest.raises(RegistryError, match=f"scheduled task '{bad.id}': .*{cause}"):
        register_scheduled_admin_task(bad)
    assert get_task("purge_stale_reports") is None


@pytest.mark.parametrize(
    ("minutes", "cron"),
    [
        (1, "* * * * *"),
        (15, "*/15 * * * *"),
        (60, "0 * * * *"),
        (360, "0 */6 * * *"),
        (1440, "0 0 * * *"),
    ],
)
def test_an_interval_becomes_an_exact_cron(minutes, cron):
    register_scheduled_admin_task(definition(schedule_cron="", schedule_interval_minutes=minutes))
    assert get_task("purge_stale_reports").cron == cron


def test_accessors_by_backend_and_enabled():
    register_scheduled_admin_task(definition(backends=(Backend.AWS,), enabled=False))
    celery = {d.id for d in get_admin_tasks_for_backend("celery")}
    assert "cleanup-orphaned-containers" in celery and "verify-validator-deployments" not in celery
    assert {d.id for d in get_admin_tasks_for_backend(Backend.GCP)} >= {
        "verify-validator-deployments"
    }
    assert [d.id for d in get_admin_tasks_for_backend("aws")] == [
        d.id
        for d in get_all_admin_tasks()
        if Backend.ALL in d.backends or d.id == "purge-stale-reports"
    ]
    assert "purge-stale-reports" not in {d.id for d in get_enabled_admin_tasks()}
    assert get_task("purge_stale_reports").backends == frozenset({"aws"})
    with pytest.raises(ValueError, match="'azure'"):
        get_admin_tasks_for_backend("azure")


def test_an_absent_id_is_none_and_reset_forgets_registrations():
    assert get_admin_task_by_id("no-such-task") is None
    register_scheduled_admin_task(PURGE_STALE_REPORTS)
    reset_dynamic_tasks()
    assert get_admin_task_by_id("purge-stale-reports") is None
    assert len(get_all_admin_tasks()) == len(BUILTIN_TASKS)
