"""Make sure the real PostgreSQL and Redis on loopback are up, starting them when down.

In CI (``CI=true``) a service that cannot be started fails the test; elsewhere the test is
skipped with a message saying what to start.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
REDIS_HOST = "127.0.0.1"
# Another checkout testing on the same machine at once can point its stacks at its own Redis.
REDIS_PORT = int(os.environ.get("VALIDIBOT_TEST_REDIS_PORT", "6379"))
START_TIMEOUT_S = 30.0


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(predicate, timeout: float, interval: float = 0.1, what: str = "condition") -> None:
    """Poll ``predicate`` until it is truthy or ``timeout`` seconds pass (then raise)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def _start_postgres() -> None:
    versions = (
        sorted(p.name for p in Path("/etc/postgresql").glob("*"))
        if Path("/etc/postgresql").exists()
        else []
    )
    if not versions or not shutil.which("pg_ctlcluster"):
        raise RuntimeError("no local PostgreSQL cluster to start (pg_ctlcluster not found)")
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],
        check=False,
        capture_output=True,
        timeout=60,
    )


def _start_redis() -> None:
    if not shutil.which("redis-server"):
        raise RuntimeError("redis-server not found")
    Path("/var/lib/redis").mkdir(parents=True, exist_ok=True)
    Path("/var/log/redis").mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "-::1",
            "--port",
            str(REDIS_PORT),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            "/var/lib/redis",
            "--logfile",
            "/var/log/redis/ci.log",
        ],
        check=False,
        capture_output=True,
        timeout=30,
    )


def ensure_service(name: str) -> None:
    """Start ``postgres`` or ``redis`` if its port is closed; fail in CI, skip elsewhere."""
    host, port, starter, hint = {
        "postgres": (
            PG_HOST,
            PG_PORT,
            _start_postgres,
            "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
        ),
        "redis": (
            REDIS_HOST,
            REDIS_PORT,
            _start_redis,
            "redis-server --daemonize yes --bind 127.0.0.1 --port 6379",
        ),
    }[name]
    if port_open(host, port):
        return
    try:
        starter()
        wait_until(lambda: port_open(host, port), START_TIMEOUT_S, what=f"{name} on {port}")
    except Exception as exc:
        message = f"{name} is not reachable on {host}:{port} and could not be started ({exc}); "
        message += f"start it with: {hint}"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)


def postgres_url(database: str = "validibot") -> str:
    return f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


def _main(names: list[str]) -> int:
    """``python -m tests.support.services postgres redis``: start what is down, or say why not."""
    status = 0
    for name in names:
        try:
            ensure_service(name)
            print(f"{name}: up")  # noqa: T201 (a command-line helper reports to its terminal)
        except BaseException as exc:  # pytest.skip/fail raise BaseException subclasses
            print(f"{name}: {exc}")  # noqa: T201
            status = 1
    return status


if __name__ == "__main__":
    import sys

    sys.exit(_main(sys.argv[1:]))
