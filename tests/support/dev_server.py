"""`validibot-ops dev` as an operator starts it: a bare laptop env, a free port, real processes."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.dagster_stack import REPO_ROOT, VENV_BIN, ManagedProcess, free_port
from tests.support.services import wait_until


def bare_env(tmp_path: Path) -> dict[str, str]:
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


@dataclass
class DevServer:
    """A running ``validibot-ops dev --port N``, its env and its GraphQL endpoint."""

    proc: ManagedProcess
    port: int
    env: dict[str, str]
    root: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        request = urllib.request.Request(  # noqa: S310 (an http URL we built)
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310 (loopback)
            return json.loads(resp.read())

    def repository(self) -> dict[str, Any] | None:
        """The one repository's jobs and schedules, or ``None`` while the server starts."""
        query = (
            "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name }"
            " jobs { name } schedules { name scheduleState { id status } } } } } }"
        )
        assert self.proc.alive(), self.proc.log()[-3000:]
        try:
            nodes = self.graphql(query)["data"]["repositoriesOrError"]["nodes"]
        except (OSError, KeyError, TypeError):
            return None
        return nodes[0] if nodes else None

    def run(self, argv: list[str], timeout: float = 180) -> subprocess.CompletedProcess:
        """A command in dev's environment, from the repository root, as a person types it."""
        env = {**self.env, "VALIDIBOT_DAGSTER_URL": self.url}
        return subprocess.run(
            argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )

    def stop(self) -> None:
        self.proc.stop()


def start_dev(root: Path, *, port: int | None = None) -> DevServer:
    """Start ``validibot-ops dev --port N`` on a fresh home and wait until it serves the code."""
    port = port or free_port()
    env = bare_env(root)
    log = root / "dev.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [str(VENV_BIN / "validibot-ops"), "dev", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = DevServer(ManagedProcess("dev", popen, log), port, env, root)
    try:
        wait_until(lambda: server.repository() is not None, 300, interval=1, what="dev serving")
    except TimeoutError as exc:
        server.stop()
        raise AssertionError(f"{exc}\n--- dev log ---\n{server.proc.log()[-5000:]}") from exc
    except BaseException:
        server.stop()
        raise
    return server
