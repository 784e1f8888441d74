"""`validibot-ops demo`, `dev` and `worker` as an operator runs them (real subprocesses)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.support.dagster_stack import REPO_ROOT, VENV_BIN, ManagedProcess, free_port
from tests.support.services import wait_until
from validibot.tasks.registry import BACKEND_DAGSTER, BUILTIN_TASKS

# What the code location runs and schedules (a GCP-only task is triggered over HTTP instead).
DAGSTER_TASKS = tuple(t for t in BUILTIN_TASKS if BACKEND_DAGSTER in t.backends)

pytestmark = [pytest.mark.subprocess, pytest.mark.timeout(300)]


def _bare_env(tmp_path: Path) -> dict[str, str]:
    """A laptop with nothing configured: no Redis, no Postgres, no Dagster settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DAGSTER_", "VALIDIBOT_", "DJANGO_", "CELERY_", "PYTEST_"))
        and k not in {"REDIS_URL", "DATABASE_URL"}
    }
    env.update(
        {
            "PATH": os.pathsep.join([str(VENV_BIN), env.get("PATH", "")]),
            "DAGSTER_HOME": str(tmp_path / "home"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "VALIDIBOT_MEDIA_ROOT": str(tmp_path / "media"),
            "VALIDIBOT_DOCKER_URL": "unix:///nonexistent/docker.sock",
        }
    )
    return env


def test_demo_runs_every_job_once_and_prints_the_table(tmp_path):
    result = subprocess.run(
        [str(VENV_BIN / "validibot-ops"), "demo"],
        cwd=REPO_ROOT,
        env=_bare_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^(\w+)\s+(SUCCESS|FAILURE)\s", result.stdout, re.MULTILINE)
    }
    assert rows == {task.id: "SUCCESS" for task in DAGSTER_TASKS}
    assert f"{len(DAGSTER_TASKS)}/{len(DAGSTER_TASKS)} jobs succeeded" in result.stdout
    assert re.search(r"^purge_expired_submissions\s+SUCCESS\s+purged=10", result.stdout, re.M)
    # History is kept in the local DAGSTER_HOME: the UI of `validibot-ops dev` will show it.
    assert (tmp_path / "home" / "history").is_dir()
    # The README shows this table; apart from run ids it must be what a reader gets.
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    done = f"{len(DAGSTER_TASKS)}/{len(DAGSTER_TASKS)}"
    shown = re.search(rf"```\n(task .*?)\n\n{done}", readme, re.DOTALL).group(1)
    printed = re.search(rf"^(task .*?)\n\n{done}", result.stdout, re.DOTALL | re.MULTILINE).group(1)

    def without_run_ids(table: str) -> list[str]:
        return [line.rsplit(None, 1)[0].rstrip() for line in table.splitlines()]

    assert without_run_ids(shown) == without_run_ids(printed)


def test_dev_serves_every_job_and_running_schedules(tmp_path):
    port = free_port()
    log = tmp_path / "dev.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [str(VENV_BIN / "validibot-ops"), "dev", "--", "-p", str(port)],
            cwd=REPO_ROOT,
            env=_bare_env(tmp_path),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    proc = ManagedProcess("dev", popen, log)
    try:
        query = (
            "{ repositoriesOrError { ... on RepositoryConnection { nodes { "
            "jobs { name } schedules { name scheduleState { status } } } } } }"
        )

        def answer():
            assert proc.alive(), proc.log()[-3000:]
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/graphql",
                data=json.dumps({"query": query}).encode(),
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310
                    return json.loads(resp.read())["data"]["repositoriesOrError"]["nodes"][0]
            except OSError:
                return None

        wait_until(lambda: answer() is not None, 120, interval=1, what="validibot-ops dev")
        repo = answer()
        jobs = {job["name"] for job in repo["jobs"]}
        schedules = {s["name"]: s["scheduleState"]["status"] for s in repo["schedules"]}
        assert {task.id for task in DAGSTER_TASKS} <= jobs
        assert schedules == {task.schedule_name: "RUNNING" for task in DAGSTER_TASKS}
        assert "QueuedRunCoordinator" in (tmp_path / "home" / "dagster.yaml").read_text()
    finally:
        proc.stop()
    assert not proc.alive()


def test_worker_without_a_broker_says_what_to_set(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "validibot_ops.cli", "worker"],
        cwd=REPO_ROOT,
        env=_bare_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "set CELERY_BROKER_URL or REDIS_URL" in result.stderr
