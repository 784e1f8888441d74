"""A downstream package written against upstream's registry API, end to end on real services.

``tests.support.downstream`` knows only upstream's contract: its ``AppConfig.ready()``
registers an upstream-shaped task whose ``celery_task`` names its own ``@shared_task``
wrapping its own command. The stack reaches it as a deployment would: Django processes install
the app (``DJANGO_SETTINGS_MODULE=tests.support.downstream.settings``), the code location (no
``django.setup()``) loads ``register_tasks`` as a plugin. One stack: Postgres, Redis, a warm
Celery worker, the daemon and the webserver.
"""

from __future__ import annotations

import json

import pytest

from tests.support.dagster_stack import REPO_ROOT, DagsterStack
from validibot.operations.dagster_client import DagsterClient
from validibot.tasks.vocabulary import TRIGGER_TAG

pytestmark = [pytest.mark.services, pytest.mark.timeout(900)]

PLUGIN = "tests.support.downstream.scheduled:register_tasks"
SETTINGS = "tests.support.downstream.settings"
TOKEN = "downstream-trigger-token-5c2e9a"  # noqa: S105  (a test token)
JOB = "purge_stale_reports"


@pytest.fixture(scope="module")
def stack(postgres_service, redis_service, tmp_path_factory):
    root = tmp_path_factory.mktemp("downstream-stack")
    extra = {"DJANGO_SETTINGS_MODULE": SETTINGS, "VALIDIBOT_TRIGGER_TOKEN": TOKEN}
    with DagsterStack.create(root, executor="warm", task_modules=(PLUGIN,), extra_env=extra) as s:
        s.start_worker("default", name="downstream-worker")
        s.start_daemon()
        _, url = s.start_webserver()
        s.env["VALIDIBOT_DAGSTER_URL"] = url
        s.url = url
        yield s


@pytest.fixture(scope="module")
def client(stack) -> DagsterClient:
    return DagsterClient(stack.url)


def stale_sessions(stack: DagsterStack, count: int) -> None:
    for n in range(count):
        stack.sql(
            "INSERT INTO django_session (session_key, session_data, expire_date) "
            "VALUES (%s, 'x', now() - interval '8 days')",
            f"stale-{n}-{stack.django_db}",
        )


def session_count(stack: DagsterStack) -> int:
    return stack.sql("SELECT count(*) FROM django_session")[0][0]


def django_shell(stack: DagsterStack, code: str) -> str:
    result = stack.run_cli(["python", "manage.py", "shell", "-c", code], timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def test_its_job_and_schedule_exist_with_its_cron(client):
    schedule = client.schedules()[f"{JOB}_schedule"]
    assert schedule.cron == "20 * * * *"
    assert schedule.status == "RUNNING"
    assert client.find_job(JOB).location


def test_a_run_through_the_daemon_on_a_warm_worker_succeeds_and_records_the_summary(stack, client):
    stale_sessions(stack, 3)
    before = session_count(stack)
    launch = stack.run_cli(
        ["dagster", "job", "launch", "-w", str(REPO_ROOT / "workspace.local.yaml"), "-j", JOB],
        timeout=180,
    )
    assert launch.returncode == 0, launch.stdout[-2000:] + launch.stderr[-2000:]
    [run] = client.recent_runs(JOB, limit=1)

    finished = client.wait_for_run(run.run_id, timeout=300)

    assert finished.status == "SUCCESS", client.run_summary(run.run_id)
    assert client.run_summary(run.run_id)["status"] == "completed"
    assert session_count(stack) == before - 3
    worker = next(p for p in stack.processes if p.name.startswith("worker-"))
    assert run.run_id in worker.log(), "the run did not execute inside the warm worker"


def test_sync_schedules_lists_it_in_upstreams_shape(stack):
    listed = json.loads(stack.manage("sync_schedules", "--list", "--format", "json").stdout)
    [ours] = [task for task in listed if task["id"] == "purge-stale-reports"]
    assert ours["celery_task"] == "downstream.purge_stale_reports"
    assert ours["api_endpoint"] == "/api/v1/scheduled/purge-stale-reports/"
    assert ours["backends"] == ["all"]


def test_post_to_its_api_endpoint_with_the_token_triggers_it(stack, client):
    answer = django_shell(
        stack,
        "import json; from django.test import Client; "
        "r = Client(SERVER_NAME='localhost').post('/api/v1/scheduled/purge-stale-reports/', "
        "data='{}', content_type='application/json', "
        f"headers={{'Authorization': 'Bearer {TOKEN}'}}); "
        "print(json.dumps({'code': r.status_code, **r.json()}))",
    )
    body = json.loads(answer)
    assert body["code"] == 202, body
    assert body["task"] == JOB
    run = client.wait_for_run(body["run_id"], timeout=300)
    assert run.status == "SUCCESS"
    assert run.tags[TRIGGER_TAG] == "http"


def test_a_builtins_delay_launches_its_dagster_job(stack, client):
    run_id = django_shell(
        stack,
        "from validibot.core.tasks.scheduled_tasks import clear_sessions; "
        "print(clear_sessions.delay().id)",
    )
    run = client.wait_for_run(run_id, timeout=300)
    assert run.status == "SUCCESS"
    assert run.tags[TRIGGER_TAG] == "shell"
    assert client.run_summary(run_id)["status"] == "completed"


def test_with_the_celery_executor_its_step_runs_on_a_worker_and_succeeds(
    postgres_service, redis_service, tmp_path
):
    """The other run mode: the run's step goes to a Celery worker (``VALIDIBOT_EXECUTOR``)."""
    extra = {"DJANGO_SETTINGS_MODULE": SETTINGS}
    with DagsterStack.create(
        tmp_path, executor="celery", task_modules=(PLUGIN,), extra_env=extra
    ) as stack:
        worker = stack.start_worker("default", name="downstream-step-worker")
        stale_sessions(stack, 2)
        result = stack.run_cli(
            ["dagster", "job", "execute", "-m", "validibot_ops.definitions", "-j", JOB],
            timeout=300,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert session_count(stack) == 0
        assert "downstream.purge_stale_reports" in worker.log() or JOB in worker.log()
