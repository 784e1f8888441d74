"""A maintenance job launched with the DockerRunLauncher variant succeeds in its own container.

The instance config is deploy/dagster.docker-run-launcher.yaml (its Postgres storage and its
launcher class and env_vars), with only what cannot exist here replaced: no registry and no
compose network, so the image is an imported empty rootfs with the host's Python and the
project's venv bind-mounted read-only at the same paths (code and DAGSTER_HOME must sit at
identical paths in every process), and the container shares the host network to reach the
local PostgreSQL. The run coordinator is ``DefaultRunCoordinator``, so ``dagster job launch``
launches at once instead of queueing for a daemon.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, DagsterRunStatus

from tests.deploy.conftest import LAUNCHER_INSTANCE, ROOT
from tests.deploy.test_dagster_instances import DEPLOY_TEST_DB, ensure_database
from tests.support.services import PG_HOST, PG_PORT, PG_USER

pytestmark = [pytest.mark.postgres]

JOB = "clear_sessions"
HOST_PYTHON_IMAGE = "validibot-test/host-python:latest"
RUN_DEADLINE_S = 120.0
VENV_BIN = Path(sys.executable).parent


def host_python_rootfs() -> bytes:
    """An empty merged-/usr rootfs: the host's /usr, Python and venv are mounted at run time."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in ("usr", "tmp", "proc", "sys", "dev", "etc"):
            entry = tarfile.TarInfo(name)
            entry.type, entry.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
            tar.addfile(entry)
        for name in ("bin", "lib", "lib64", "sbin"):
            link = tarfile.TarInfo(name)
            link.type, link.linkname = tarfile.SYMTYPE, f"usr/{name}"
            tar.addfile(link)
    return buffer.getvalue()


def read_only_mounts(dagster_home: Path) -> list[str]:
    """Bind mounts at identical paths: /usr, the Python install, the project (with its venv)."""
    paths = {Path("/usr"), Path(sys.base_prefix).resolve(), ROOT, Path(sys.prefix).resolve()}
    mounts = [f"{p}:{p}:ro" for p in sorted(paths) if not _inside(p, paths - {p})]
    mounts += ["/etc/passwd:/etc/passwd:ro", "/etc/group:/etc/group:ro"]
    return [*mounts, f"{dagster_home}:{dagster_home}:rw"]


def _inside(path: Path, others: set[Path]) -> bool:
    return any(other in path.parents for other in others)


def base_env() -> dict[str, str]:
    """What the daemon's environment would hold in production (.env), pointed at local services."""
    database = f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{DEPLOY_TEST_DB}"
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": "docker-run-launcher-test",
        "DJANGO_ALLOWED_HOSTS": "localhost",
        "DATABASE_URL": database,
        # The variant passes the broker URLs on; the run executes its step in-process here.
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
        "CELERY_WORKER_CONCURRENCY": "1",
        # The compose overlay sets both on the daemon; the launcher copies them into the run.
        "VALIDIBOT_RUN_MODE": "warm",
        "VALIDIBOT_EXECUTOR": "in_process",
        "DAGSTER_PG_HOST": PG_HOST,
        "DAGSTER_PG_PORT": str(PG_PORT),
        "DAGSTER_PG_USER": PG_USER,
        "DAGSTER_PG_PASSWORD": "",
        "DAGSTER_PG_DB": DEPLOY_TEST_DB,
    }


def write_instance(dagster_home: Path) -> dict:
    """The variant's instance config, adapted to a private engine with no registry or network."""
    config = yaml.safe_load(LAUNCHER_INSTANCE.read_text())
    # Launch at once: no daemon drains a queue in this test (and Dagster's default is queued).
    config["run_coordinator"] = {
        "module": "dagster.core.run_coordinator",
        "class": "DefaultRunCoordinator",
    }
    launcher = config["run_launcher"]["config"]
    launcher.pop("network")
    launcher["image"] = HOST_PYTHON_IMAGE
    launcher["env_vars"] += [
        f"DAGSTER_HOME={dagster_home}",
        f"PATH={VENV_BIN}:/usr/bin:/bin",
        "HOME=/tmp",
    ]
    launcher["container_kwargs"] = {
        **{k: v for k, v in launcher["container_kwargs"].items() if k != "volumes"},
        "volumes": read_only_mounts(dagster_home),
        "network_mode": "host",
        "working_dir": str(ROOT),
    }
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return config


@pytest.fixture
def launch_env(postgres_service, docker_client, docker_url, tmp_path_factory) -> dict[str, str]:
    """Environment of the launching process, with a migrated Django DB and an imported image."""
    ensure_database(DEPLOY_TEST_DB)
    dagster_home = Path(tmp_path_factory.mktemp("dagster-home"))
    write_instance(dagster_home)
    docker_client.api.import_image_from_data(
        host_python_rootfs(), repository=HOST_PYTHON_IMAGE.split(":")[0], tag="latest"
    )
    env = {**os.environ, **base_env(), "DAGSTER_HOME": str(dagster_home), "DOCKER_HOST": docker_url}
    migrate = [sys.executable, "manage.py", "migrate", "--noinput"]
    subprocess.run(migrate, cwd=ROOT, env=env, check=True, capture_output=True, timeout=180)
    return env


def wait_for_run(instance: DagsterInstance, run_id: str):
    """The run once it finishes, or as it stands when the deadline passes."""
    deadline = time.monotonic() + RUN_DEADLINE_S
    run = instance.get_run_by_id(run_id)
    while time.monotonic() < deadline and not (run is not None and run.is_finished):
        time.sleep(1)
        run = instance.get_run_by_id(run_id)
    return run


def describe_failure(instance: DagsterInstance, run_id: str, docker_client, run) -> str:
    events = [e.message for e in instance.all_logs(run_id) if e.message][-15:]
    container_id = run.tags.get("docker/container_id") if run else None
    logs = docker_client.containers.get(container_id).logs()[-3000:] if container_id else b""
    return "\n".join(events) + "\n--- container log ---\n" + logs.decode(errors="replace")


def test_a_maintenance_job_succeeds_in_its_own_labelled_container(
    launch_env, docker_client, monkeypatch
):
    run_id = str(uuid.uuid4())
    launch = [
        str(VENV_BIN / "dagster"), "job", "launch",
        "-m", "validibot_ops.definitions", "-j", JOB, "--run-id", run_id,
    ]  # fmt: skip
    done = subprocess.run(
        launch, cwd=ROOT, env=launch_env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]

    for name in ("DAGSTER_HOME", *base_env()):
        monkeypatch.setenv(name, launch_env[name])
    instance = DagsterInstance.get()
    try:
        run = wait_for_run(instance, run_id)
        assert run is not None and run.status == DagsterRunStatus.SUCCESS, describe_failure(
            instance, run_id, docker_client, run
        )
        container = docker_client.containers.get(run.tags["docker/container_id"])
        assert container.labels["dagster/run_id"] == run_id
        assert container.labels["dagster/job_name"] == JOB
        assert container.attrs["State"]["ExitCode"] == 0
        assert container.attrs["Config"]["Image"] == HOST_PYTHON_IMAGE
    finally:
        instance.dispose()
        for container in docker_client.containers.list(
            all=True, filters={"label": f"dagster/run_id={run_id}"}
        ):
            container.remove(force=True)
