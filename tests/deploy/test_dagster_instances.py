"""The DockerRunLauncher variant is deploy/dagster.yaml with another launcher, and loads."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import psycopg
import pytest
from dagster import DagsterInstance
from dagster_docker import DockerRunLauncher

from tests.deploy.conftest import LAUNCHER_INSTANCE, ROOT_INSTANCE, load_yaml
from tests.support.services import PG_HOST, PG_PORT, PG_USER

DEPLOY_TEST_DB = "validibot_deploy"


def test_variant_is_the_root_instance_plus_a_docker_run_launcher():
    root, variant = load_yaml(ROOT_INSTANCE), load_yaml(LAUNCHER_INSTANCE)
    launcher = variant.pop("run_launcher")
    root_launcher = root.pop("run_launcher")
    assert root_launcher["class"] == "ValidibotRunLauncher"
    assert variant == root, (
        "deploy/dagster.docker-run-launcher.yaml drifted from deploy/dagster.yaml"
    )
    assert (launcher["module"], launcher["class"]) == ("dagster_docker", "DockerRunLauncher")


def test_variant_names_the_compose_network_and_volume(compose):
    launcher = load_yaml(LAUNCHER_INSTANCE)["run_launcher"]["config"]
    project = compose["name"]
    assert launcher["network"] == f"{project}_backend"
    assert "backend" in compose["networks"]
    volume = launcher["container_kwargs"]["volumes"][0].split(":")[0]
    assert volume == f"{project}_media" and "media" in compose["volumes"]


def ensure_database(name: str) -> None:
    """Create ``name`` on the local server unless it exists (other sessions share the server)."""
    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(f'CREATE DATABASE "{name}"')


@pytest.fixture
def postgres_instance_env(postgres_service, monkeypatch) -> None:
    """DAGSTER_PG_* pointing at a database of its own on the local PostgreSQL."""
    ensure_database(DEPLOY_TEST_DB)
    for name, value in {
        "DAGSTER_PG_HOST": PG_HOST,
        "DAGSTER_PG_PORT": str(PG_PORT),
        "DAGSTER_PG_USER": PG_USER,
        "DAGSTER_PG_PASSWORD": "",
        "DAGSTER_PG_DB": DEPLOY_TEST_DB,
    }.items():
        monkeypatch.setenv(name, value)


def load_instance(config: Path, home: Path) -> DagsterInstance:
    shutil.copy(config, home / "dagster.yaml")
    return DagsterInstance.from_config(str(home))


@pytest.mark.postgres
@pytest.mark.usefixtures("postgres_instance_env")
@pytest.mark.parametrize("config", [ROOT_INSTANCE, LAUNCHER_INSTANCE], ids=lambda p: p.name)
def test_instance_config_loads_against_real_postgres(config, tmp_path):
    instance = load_instance(config, tmp_path)
    try:
        assert instance.get_runs(limit=1) is not None  # storage answers
        if config == LAUNCHER_INSTANCE:
            assert isinstance(instance.run_launcher, DockerRunLauncher)
            assert instance.run_launcher.networks == ["validibot_backend"]
    finally:
        instance.dispose()


@pytest.mark.postgres
@pytest.mark.usefixtures("postgres_instance_env")
@pytest.mark.parametrize("config", [ROOT_INSTANCE, LAUNCHER_INSTANCE], ids=lambda p: p.name)
def test_instance_storage_stores_run_events_on_real_postgres(config, tmp_path):
    """Guards the SQLAlchemy 2.0 pin: under 2.1 postgresql:// means psycopg 3, and
    dagster-postgres' ``NOTIFY run_events, $1`` fails every event write."""
    instance = load_instance(config, tmp_path)
    try:
        run = instance.create_run_for_job(job_def=_noop_job())
        instance.report_engine_event("deploy test event", dagster_run=run)
        messages = [event.message for event in instance.all_logs(run.run_id)]
        assert "deploy test event" in messages
        instance.delete_run(run.run_id)
    finally:
        instance.dispose()


def _noop_job():
    from dagster import job, op

    @op
    def noop() -> None:
        """Does nothing: the test is about storage, not execution."""

    @job(name="deploy_storage_check")
    def deploy_storage_check() -> None:
        noop()

    return deploy_storage_check
