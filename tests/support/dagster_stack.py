"""Real Dagster processes for tests: a Postgres-backed instance, Celery workers, the daemon,
the webserver. Each process runs in its own session and is stopped by PID (process group).

    with DagsterStack.create(tmp_path) as stack:
        stack.start_worker("default")
        stack.run_cli(["dagster", "job", "execute", "-m", "validibot_ops.definitions", "-j", ...])
        with stack.instance() as instance: ...

The instance uses the production ``deploy/dagster.yaml``, pointed at a
fresh Postgres database; Django uses another fresh Postgres database, migrated once.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tests.support.services import PG_HOST, PG_PORT, PG_USER, REDIS_HOST, REDIS_PORT, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
TEST_TASK_MODULE = "tests.support.testapp.registered"


def _admin_connect(port: int = PG_PORT):
    import psycopg

    return psycopg.connect(
        host=PG_HOST, port=port, user=PG_USER, dbname="postgres", autocommit=True
    )


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def create_database(name: str, port: int = PG_PORT) -> None:
    with _admin_connect(port) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str, port: int = PG_PORT) -> None:
    with _admin_connect(port) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class ManagedProcess:
    """A child started in its own session; ``stop`` ends the whole process group."""

    name: str
    popen: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal only the leader (a crash of that process), leaving its children alone."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def stop(self, timeout: float = 20.0) -> None:
        if self.popen.poll() is not None and not self._group_alive():
            return
        descendants = self._descendants()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        for proc in descendants:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)

    def _descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.Error:
            return []

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.pid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            return False


@dataclass
class DagsterStack:
    root: Path
    env: dict[str, str]
    django_db: str
    dagster_db: str
    processes: list[ManagedProcess] = field(default_factory=list)
    pg_port: int = PG_PORT

    @classmethod
    def create(
        cls,
        root: Path,
        *,
        executor: str = "celery",
        task_modules: Sequence[str] = (TEST_TASK_MODULE,),
        extra_env: dict[str, str] | None = None,
        instance_yaml: Path | None = None,
        pg_port: int = PG_PORT,
        redis_url: str | None = None,
    ) -> DagsterStack:
        """``pg_port`` / ``redis_url`` point the stack at private servers (fault tests restart
        them); by default it uses the shared ones on 5432 / 6379."""
        suffix = uuid.uuid4().hex[:8]
        django_db, dagster_db = f"vb_it_django_{suffix}", f"vb_it_dagster_{suffix}"
        home = root / "dagster_home"
        home.mkdir(parents=True, exist_ok=True)
        shutil.copy(instance_yaml or REPO_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
        (root / "media").mkdir(exist_ok=True)
        redis_db = random.randint(8, 15)  # keep clear of the default db 0 other runs may use
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DAGSTER_", "CELERY_", "VALIDIBOT_", "PYTEST_"))
            and key not in {"REDIS_URL", "DATABASE_URL", "DJANGO_SETTINGS_MODULE"}
        }
        env.update(
            {
                "PATH": os.pathsep.join([str(VENV_BIN), env.get("PATH", "")]),
                "PYTHONPATH": str(REPO_ROOT),
                "DAGSTER_HOME": str(home),
                "DAGSTER_PG_HOST": PG_HOST,
                "DAGSTER_PG_PORT": str(pg_port),
                "DAGSTER_PG_USER": PG_USER,
                "DAGSTER_PG_PASSWORD": "unused-trust-auth",
                "DAGSTER_PG_DB": dagster_db,
                "DATABASE_URL": f"postgres://{PG_USER}@{PG_HOST}:{pg_port}/{django_db}",
                "DJANGO_SETTINGS_MODULE": "config.settings.test",
                "VALIDIBOT_MEDIA_ROOT": str(root / "media"),
                # "warm": the default run mode (runs inside the workers, no forced executor);
                # "celery" forces the Celery executor (the celery-executor run mode).
                **(
                    {"VALIDIBOT_RUN_MODE": "warm"}
                    if executor == "warm"
                    else {"VALIDIBOT_EXECUTOR": executor}
                ),
                "VALIDIBOT_TASK_MODULES": ",".join(task_modules),
                "VALIDIBOT_DOCKER_URL": "unix:///nonexistent/docker.sock",
                "DAGSTER_DISABLE_TELEMETRY": "1",
            }
        )
        if executor in {"celery", "warm"}:
            env["REDIS_URL"] = redis_url or f"redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}"
        env.update(extra_env or {})
        create_database(django_db, pg_port)
        create_database(dagster_db, pg_port)
        stack = cls(root=root, env=env, django_db=django_db, dagster_db=dagster_db, pg_port=pg_port)
        stack.manage("migrate", "-v0")
        return stack

    # -- context management -------------------------------------------------------------
    def __enter__(self) -> DagsterStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        if self.env.get("REDIS_URL"):
            with contextlib.suppress(Exception):
                import redis

                redis.Redis.from_url(self.env["REDIS_URL"]).flushdb()
        drop_database(self.django_db, self.pg_port)
        drop_database(self.dagster_db, self.pg_port)

    # -- running things -----------------------------------------------------------------
    def manage(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return self.run_cli([sys.executable, "manage.py", *args], timeout=timeout, check=True)

    def run_cli(
        self,
        argv: Sequence[str],
        timeout: float = 300,
        check: bool = False,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess:
        argv = list(argv)
        if argv[0] in {"dagster", "dagster-daemon", "validibot-ops", "dagster-webserver"}:
            argv[0] = str(VENV_BIN / argv[0])
        result = subprocess.run(
            argv,
            cwd=REPO_ROOT,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
            )
        return result

    def start(
        self, name: str, argv: Sequence[str], env: dict[str, str] | None = None
    ) -> ManagedProcess:
        log_path = self.root / f"{name}-{len(self.processes)}.log"
        argv = list(argv)
        if not os.path.isabs(argv[0]) and (VENV_BIN / argv[0]).exists():
            argv[0] = str(VENV_BIN / argv[0])
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                argv,
                cwd=REPO_ROOT,
                env={**self.env, **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = ManagedProcess(name, popen, log_path)
        self.processes.append(proc)
        return proc

    def start_worker(self, *queues: str, name: str | None = None) -> ManagedProcess:
        queues = queues or ("default",)
        node = name or f"{'-'.join(queues)}-{uuid.uuid4().hex[:4]}"
        argv = ["validibot-ops", "worker", "--name", node, "--loglevel", "INFO"]
        for queue in queues:
            argv += ["--queue", queue]
        proc = self.start(f"worker-{node}", argv)
        wait_until(
            lambda: "ready." in proc.log() or not proc.alive(), 60, what=f"worker {node} ready"
        )
        assert proc.alive(), f"worker {node} exited:\n{proc.log()[-3000:]}"
        return proc

    def start_daemon(self, workspace: Path | None = None) -> ManagedProcess:
        workspace = workspace or REPO_ROOT / "workspace.local.yaml"
        return self.start("daemon", ["dagster-daemon", "run", "-w", str(workspace)])

    def start_webserver(self, workspace: Path | None = None) -> tuple[ManagedProcess, str]:
        """``dagster-webserver`` on a free loopback port; returns the process and its base URL."""
        import urllib.request

        workspace = workspace or REPO_ROOT / "workspace.local.yaml"
        port = free_port()
        proc = self.start(
            "webserver",
            ["dagster-webserver", "-h", "127.0.0.1", "-p", str(port), "-w", str(workspace)],
        )
        url = f"http://127.0.0.1:{port}"

        def answering() -> bool:
            assert proc.alive(), f"webserver exited:\n{proc.log()[-3000:]}"
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=2) as resp:  # noqa: S310
                    return resp.status == 200
            except OSError:
                return False

        wait_until(answering, 300, interval=0.5, what=f"dagster-webserver on {url}")
        return proc, url

    @contextlib.contextmanager
    def instance(self) -> Iterator:
        """The stack's DagsterInstance in this process (its env applied while open)."""
        import dagster as dg

        keys = [k for k in self.env if k.startswith("DAGSTER_PG_")]
        saved = {k: os.environ.get(k) for k in keys}
        os.environ.update({k: self.env[k] for k in keys})
        try:
            with dg.DagsterInstance.from_config(self.env["DAGSTER_HOME"]) as instance:
                yield instance
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def sql(self, query: str, *params) -> list[tuple]:
        """Run a query on the stack's Django database (bypassing the test's own DB)."""
        import psycopg

        with psycopg.connect(
            host=PG_HOST, port=self.pg_port, user=PG_USER, dbname=self.django_db, autocommit=True
        ) as conn:
            cur = conn.execute(query, params or None)
            return cur.fetchall() if cur.description else []
