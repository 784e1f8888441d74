"""Private Redis and PostgreSQL servers the fault tests may restart.

The servers on 6379 and 5432 are shared with other test runs on the machine; restarting them
would break those. These run on free ports, in a temporary directory, and are stopped by PID.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.dagster_stack import free_port
from tests.support.services import PG_HOST, port_open, wait_until


def _pg_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if found:
        return str(found[-1])
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"PostgreSQL's {name} not found")
    return path


@dataclass
class _Server:
    """One server process in its own session; ``stop`` signals it and waits."""

    root: Path
    port: int = field(default_factory=free_port)
    popen: subprocess.Popen | None = None
    starts: int = 0

    def argv(self) -> list[str]:
        raise NotImplementedError

    def user(self) -> str | None:
        return None

    def ready(self) -> bool:
        return port_open(PG_HOST, self.port)

    def start(self) -> None:
        self.starts += 1
        log = (self.root / f"server-{self.starts}.log").open("wb")
        self.popen = subprocess.Popen(
            self.argv(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=self.user(),
        )
        log.close()
        wait_until(self._up_or_dead, 60, interval=0.1, what=f"{type(self).__name__} on {self.port}")
        if self.popen.poll() is not None:
            raise RuntimeError(f"{type(self).__name__} exited:\n{self.log()[-2000:]}")

    def _up_or_dead(self) -> bool:
        return self.popen.poll() is not None or self.ready()

    def log(self) -> str:
        path = self.root / f"server-{self.starts}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.popen.pid, sig)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)
        wait_until(lambda: not port_open(PG_HOST, self.port), 10, what="port closed")

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class PrivateRedis(_Server):
    """redis-server with the production setting that matters here: appendonly persistence
    (docker-compose.yml), so a restart keeps queued steps as the real broker would."""

    def argv(self) -> list[str]:
        return [
            "redis-server",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes",
            "--dir", str(self.root),
            "--daemonize", "no",
        ]  # fmt: skip

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@dataclass
class PrivatePostgres(_Server):
    """A throwaway cluster (initdb, trust auth, UTC) run as the postgres user when we are root."""

    def user(self) -> str | None:
        return "postgres" if os.geteuid() == 0 else None

    @property
    def data(self) -> Path:
        return self.root / "data"

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.user():
            shutil.chown(self.root, self.user(), self.user())
        subprocess.run(
            [
                _pg_bin("initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
            user=self.user(),
            timeout=120,
        )

    def argv(self) -> list[str]:
        return [
            _pg_bin("postgres"),
            "-D", str(self.data),
            "-p", str(self.port),
            "-k", str(self.root),
            "-c", "listen_addresses=127.0.0.1",
            "-c", "timezone=UTC",
            "-c", "fsync=off",
            "-c", "max_connections=200",
        ]  # fmt: skip

    def ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(
                host=PG_HOST, port=self.port, user="postgres", dbname="postgres", connect_timeout=2
            ):
                return True
        except psycopg.Error:
            return False

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> None:
        """SIGINT is PostgreSQL's fast shutdown: clients are disconnected, nothing is lost."""
        super().stop(sig, timeout)


@contextlib.contextmanager
def private_postgres():
    root = Path(tempfile.mkdtemp(prefix="vb-faults-pg-"))
    server = PrivatePostgres(root)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def private_redis():
    root = Path(tempfile.mkdtemp(prefix="vb-faults-redis-"))
    server = PrivateRedis(root)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
