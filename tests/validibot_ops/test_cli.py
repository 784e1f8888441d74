"""`validibot-ops demo`, `dev` and `worker` as an operator runs them (real subprocesses).

The path of issue 14, from a fresh checkout: the demo twice (same table), then `dev --port N`
on that history, the stock `dagster` CLI beside it, both sync checks, and a SIGTERM.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.support.dagster_stack import REPO_ROOT, VENV_BIN, free_port
from tests.support.dev_server import DevServer, bare_env, start_dev
from tests.support.services import wait_until
from validibot.tasks.registry import BACKEND_DAGSTER, BUILTIN_TASKS
from validibot_ops.checks import ALL_CHECKS_SCHEDULE

# What the code location runs and schedules (a GCP-only task is triggered over HTTP instead).
DAGSTER_TASKS = tuple(t for t in BUILTIN_TASKS if BACKEND_DAGSTER in t.backends)
# What the demo runs: it has no webserver, so a task whose command needs one is left out.
DEMOED = tuple(t for t in DAGSTER_TASKS if not t.needs_webserver)
DONE = f"{len(DEMOED)}/{len(DEMOED)}"

pytestmark = [pytest.mark.services, pytest.mark.subprocess, pytest.mark.timeout(900)]

REPOSITORY_LABEL = "__repository__@validibot_ops"
"""The hidden `.dagster/repository` tag the UI's job pages filter runs on."""


def _demo(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "validibot-ops"), "demo"],
        cwd=REPO_ROOT,
        env=bare_env(root),
        capture_output=True,
        text=True,
        timeout=400,
    )


def _table(stdout: str) -> list[str]:
    """The printed table without its run ids (they differ on every run)."""
    printed = re.search(r"^(task .*?)\n\n\d+/\d+ jobs", stdout, re.DOTALL | re.MULTILINE)
    assert printed, stdout[-3000:]
    return [line.rsplit(None, 1)[0].rstrip() for line in printed.group(1).splitlines()]


@pytest.fixture(scope="module")
def demo_outputs(tmp_path_factory) -> tuple[Path, list[subprocess.CompletedProcess]]:
    """The demo run twice on one home and one database: fresh, then reused."""
    root = tmp_path_factory.mktemp("demo")
    return root, [_demo(root), _demo(root)]


@pytest.fixture(scope="module")
def dev(demo_outputs) -> DevServer:
    root, _ = demo_outputs
    server = start_dev(root)
    yield server
    server.stop()


def test_demo_runs_every_job_once_and_prints_the_same_table_every_time(demo_outputs):
    root, results = demo_outputs
    for result in results:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    first, second = (r.stdout for r in results)
    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^(\w+)\s+(SUCCESS|FAILURE)\s", first, re.MULTILINE)
    }
    assert rows == {task.id: "SUCCESS" for task in DEMOED}
    assert f"{DONE} jobs succeeded" in first
    for task in DAGSTER_TASKS:
        if task.needs_webserver:
            assert f"Not run here: {task.id} (it talks to the webserver" in first
    assert re.search(r"^purge_expired_submissions\s+SUCCESS\s+purged=10", first, re.M)
    # A reused home and database give the same counts (seed data is reset, not piled up).
    assert _table(first) == _table(second)
    assert (root / "home" / "history").is_dir()
    # The README shows this table; apart from run ids it must be what a reader gets.
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    shown = re.search(rf"```\n(task .*?)\n\n{DONE}", readme, re.DOTALL).group(1)
    assert [line.rsplit(None, 1)[0].rstrip() for line in shown.splitlines()] == _table(first)


def test_dev_serves_one_location_named_validibot_ops(dev):
    repo = dev.repository()
    assert repo["location"]["name"] == "validibot_ops"
    assert {task.id for task in DAGSTER_TASKS} <= {job["name"] for job in repo["jobs"]}
    schedules = {s["name"]: s["scheduleState"]["status"] for s in repo["schedules"]}
    expected = {task.schedule_name: "RUNNING" for task in DAGSTER_TASKS}
    assert schedules == {**expected, ALL_CHECKS_SCHEDULE: "RUNNING"}
    assert "QueuedRunCoordinator" in (dev.root / "home" / "dagster.yaml").read_text()
    log = dev.proc.log()
    assert f"export VALIDIBOT_DAGSTER_URL={dev.url}" in log
    assert "dagster.yaml" not in log.split("export VALIDIBOT_DAGSTER_URL", 1)[1]


@pytest.mark.parametrize("task", [t.id for t in DEMOED])
def test_demo_runs_are_on_each_job_page(dev, task):
    """The job page's Runs tab and the jobs list filter on job name + repository label."""
    query = (
        "query($job: String!, $repo: String!) { runsOrError(filter: {pipelineName: $job, "
        'tags: [{key: ".dagster/repository", value: $repo}]}) { ... on Runs { results '
        "{ runId status tags { key value } } } } }"
    )
    runs = dev.graphql(query, {"job": task, "repo": REPOSITORY_LABEL})["data"]["runsOrError"]
    demo_tag = {"key": "validibot/trigger", "value": "demo"}
    demo = [r for r in runs["results"] if demo_tag in r["tags"]]
    assert len(demo) >= 2, runs
    assert {r["status"] for r in demo} == {"SUCCESS"}


def _wait_for_latest(dev: DevServer, job: str, after: set[str]) -> dict:
    query = (
        "query($job: String!) { runsOrError(filter: {pipelineName: $job}, limit: 5) "
        "{ ... on Runs { results { runId status tags { key value } } } } }"
    )
    found: dict = {}

    def finished() -> bool:
        results = dev.graphql(query, {"job": job})["data"]["runsOrError"]["results"]
        new = [r for r in results if r["runId"] not in after]
        if new and new[0]["status"] in {"SUCCESS", "FAILURE", "CANCELED"}:
            found.update(new[0])
            return True
        return False

    wait_until(finished, 180, interval=1, what=f"a new run of {job} to finish")
    return found


def _run_ids(dev: DevServer, job: str) -> set[str]:
    query = (
        "query($job: String!) { runsOrError(filter: {pipelineName: $job}) "
        "{ ... on Runs { results { runId } } } }"
    )
    results = dev.graphql(query, {"job": job})["data"]["runsOrError"]["results"]
    return {r["runId"] for r in results}


def test_stock_cli_job_launch_runs_to_success_on_the_dev_daemon(dev):
    """The README's one line (DAGSTER_HOME) and `dagster job launch -w workspace.local.yaml`."""
    before = _run_ids(dev, "clear_sessions")
    launch = dev.run(
        ["dagster", "job", "launch", "-w", "workspace.local.yaml", "-j", "clear_sessions"]
    )
    assert launch.returncode == 0, launch.stdout[-2000:] + launch.stderr[-3000:]
    assert "DAGSTER_PG" not in launch.stderr
    run = _wait_for_latest(dev, "clear_sessions", before)
    assert run["status"] == "SUCCESS", dev.proc.log()[-4000:]
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert tags["validibot/trigger"] == "cli"


def test_reexecuting_a_demo_run_works_and_is_tagged_retry(dev):
    demo_run = next(iter(_run_ids(dev, "cleanup_idempotency_keys")))
    before = _run_ids(dev, "cleanup_idempotency_keys")
    mutation = (
        "mutation($id: String!) { launchPipelineReexecution(reexecutionParams: "
        "{parentRunId: $id, strategy: ALL_STEPS}) { __typename ... on PythonError { message } } }"
    )
    answer = dev.graphql(mutation, {"id": demo_run})["data"]["launchPipelineReexecution"]
    assert answer["__typename"] == "LaunchRunSuccess", answer
    run = _wait_for_latest(dev, "cleanup_idempotency_keys", before)
    assert run["status"] == "SUCCESS", dev.proc.log()[-4000:]
    assert {"key": "validibot/trigger", "value": "retry"} in run["tags"]


def test_both_sync_checks_see_a_schedule_stopped_through_graphql(dev):
    toggled = "clear_sessions_schedule"
    state = {s["name"]: s["scheduleState"] for s in dev.repository()["schedules"]}[toggled]
    stop = (
        "mutation($id: String!) { stopRunningSchedule(id: $id) { ... on ScheduleStateResult "
        "{ scheduleState { status } } ... on Error { message } } }"
    )
    assert dev.graphql(stop, {"id": state["id"]})["data"]["stopRunningSchedule"] == {
        "scheduleState": {"status": "STOPPED"}
    }
    try:
        over_graphql = dev.run([sys.executable, "manage.py", "sync_schedules", "--check"])
        on_instance = dev.run(["validibot-ops", "sync-schedules", "--check"])
        expected = f"~ {toggled}: STOPPED -> RUNNING"
        for result in (over_graphql, on_instance):
            assert result.returncode == 1, result.stdout + result.stderr
            assert expected in result.stdout
            assert "1 to start" in result.stdout
    finally:
        assert dev.run(["validibot-ops", "sync-schedules"]).returncode == 0
    assert dev.run([sys.executable, "manage.py", "sync_schedules", "--check"]).returncode == 0


_SENSOR_TICK = """
query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) {
  ... on Sensor { sensorState { ticks(limit: 1) { status skipReason } } } } }
"""


def _maintenance_banner(dev: DevServer) -> str:
    selector = {
        "repositoryLocationName": "validibot_ops",
        "repositoryName": "__repository__",
        "sensorName": "validibot_maintenance",
    }
    data = dev.graphql(_SENSOR_TICK, {"s": selector})["data"]["sensorOrError"]
    ticks = data["sensorState"]["ticks"]
    return (ticks[0]["skipReason"] or "") if ticks else ""


def test_maintenance_round_trip_against_dev_restores_every_schedule(dev):
    """Issue 19: `validibot-ops maintenance on/off` as an operator runs it, beside a live
    daemon and webserver: a mixed set of running and stopped schedules comes back exactly,
    the state outlives each command's process, and the UI's sensor shows it."""

    def states() -> dict[str, str]:
        return {s["name"]: s["scheduleState"]["status"] for s in dev.repository()["schedules"]}

    toggled = "clear_sessions_schedule"
    state_id = {s["name"]: s["scheduleState"]["id"] for s in dev.repository()["schedules"]}
    stop = "mutation($id: String!) { stopRunningSchedule(id: $id) { __typename } }"
    dev.graphql(stop, {"id": state_id[toggled]})
    try:
        before = states()
        assert before[toggled] == "STOPPED" and "RUNNING" in before.values()
        on = dev.run(
            ["validibot-ops", "maintenance", "on", "--reason", "deploy 12", "--author", "alice"]
        )
        assert on.returncode == 0, on.stdout + on.stderr
        assert set(states().values()) == {"STOPPED"}
        again = dev.run(["validibot-ops", "maintenance", "on", "--reason", "x", "--author", "b"])
        assert "first recorded states kept" in again.stdout, again.stdout + again.stderr
        status = dev.run(["validibot-ops", "maintenance", "status"])
        assert "maintenance on: deploy 12 (by alice since" in status.stdout
        assert f"{toggled}: was STOPPED (STOPPED)" in status.stdout
        table = dev.run([sys.executable, "manage.py", "scheduled_task_status"])
        assert "MAINTENANCE MODE ON, schedules paused: deploy 12" in table.stdout
        doctor = dev.run([sys.executable, "manage.py", "doctor", "--json", "--skip", "workers"])
        rows = {r["check"]: r for r in json.loads(doctor.stdout.strip().splitlines()[-1])}
        assert rows["maintenance"]["detail"].startswith("ON: deploy 12 (by alice")
        wait_until(
            lambda: _maintenance_banner(dev).startswith("MAINTENANCE ON: deploy 12 (by alice"),
            240,
            interval=3,
            what="the validibot_maintenance sensor's banner",
        )
        off = dev.run(["validibot-ops", "maintenance", "off"])
        assert off.returncode == 0, off.stdout + off.stderr
        assert states() == before
        assert "nothing to restore" in dev.run(["validibot-ops", "maintenance", "off"]).stdout
        assert states() == before
    finally:
        dev.run(["validibot-ops", "maintenance", "off"])
        assert dev.run(["validibot-ops", "sync-schedules"]).returncode == 0


def test_status_commands_take_the_url_dev_prints(dev):
    status = dev.run([sys.executable, "manage.py", "scheduled_task_status", "--json"])
    assert status.returncode == 0, status.stderr
    rows = {row["task"]: row for row in json.loads(status.stdout.strip().splitlines()[-1])}
    # Weekly (Sunday 04:00): no tick lands between the demo and this check, unlike the hourly
    # purges, whose last run may well be a `schedule` one by now.
    assert rows["cleanup_callback_receipts"]["last_status"] == "SUCCESS"
    assert rows["cleanup_callback_receipts"]["last_trigger"] == "demo"
    demoed = {row["last_trigger"] for task, row in rows.items() if task in {t.id for t in DEMOED}}
    assert demoed <= {"demo", "schedule", "cli", "retry"}
    doctor = dev.run(
        [sys.executable, "manage.py", "doctor", "--skip", "redis", "--skip", "workers", "--json"]
    )
    assert "code_location" in doctor.stdout, doctor.stderr
    checks = {c["check"]: c for c in json.loads(doctor.stdout.strip().splitlines()[-1])}
    assert checks["code_location"]["status"] == "ok", checks["code_location"]
    assert checks["daemon"]["status"] == "ok", checks["daemon"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_dev_stops_its_whole_process_tree(tmp_path, signum):
    server = start_dev(tmp_path)
    try:
        leader = psutil.Process(server.proc.pid)
        tree = [leader, *leader.children(recursive=True)]
        assert len(tree) >= 4, [p.name() for p in tree]  # dev, dagster dev, webserver, daemon...
        os.kill(leader.pid, signum)

        def alive(proc: psutil.Process) -> bool:
            try:
                return proc.status() != psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return False

        deadline = time.monotonic() + 15
        while any(alive(p) for p in tree) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [(p.pid, p.name()) for p in tree if alive(p)]
        assert not left, f"still running 15 s after {signum.name}: {left}"
        assert server.proc.popen.wait(timeout=5) == 0
    finally:
        server.stop()


def test_dev_refuses_a_port_out_of_range(tmp_path):
    result = subprocess.run(
        [str(VENV_BIN / "validibot-ops"), "dev", "--port", "99999"],
        cwd=REPO_ROOT,
        env=bare_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "argument --port/-p: must be a port number (1..65535), got '99999'" in result.stderr


def test_worker_without_a_broker_says_what_to_set(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "validibot_ops.cli", "worker"],
        cwd=REPO_ROOT,
        env=bare_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "set CELERY_BROKER_URL or REDIS_URL" in result.stderr


def test_a_second_dev_on_the_same_port_or_home_refuses_at_once_changing_nothing(dev, tmp_path):
    """Issue 28 point 1: the second `dev` printed its URL, failed to bind ~100 s later and kept
    a second daemon running. Now it exits 2 within 10 s, names what runs, starts nothing."""
    before = sorted(p.name for p in Path(dev.env["DAGSTER_HOME"]).iterdir())
    same_home = subprocess.run(
        [str(VENV_BIN / "validibot-ops"), "dev", "--port", str(free_port())],
        cwd=REPO_ROOT,
        env=dev.env,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert same_home.returncode == 2, same_home.stdout + same_home.stderr
    assert f"validibot-ops dev already runs on DAGSTER_HOME={dev.env['DAGSTER_HOME']}" in (
        same_home.stderr
    )
    assert f"UI {dev.url}" in same_home.stderr and "nothing was started" in same_home.stderr
    assert sorted(p.name for p in Path(dev.env["DAGSTER_HOME"]).iterdir()) == before

    other_home = bare_env(tmp_path)
    same_port = subprocess.run(
        [str(VENV_BIN / "validibot-ops"), "dev", "--port", str(dev.port)],
        cwd=REPO_ROOT,
        env=other_home,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert same_port.returncode == 2, same_port.stdout + same_port.stderr
    assert f"port {dev.port} on 127.0.0.1 is already in use" in same_port.stderr
    assert not Path(other_home["DAGSTER_HOME"]).exists()
    assert dev.repository() is not None  # the first one still serves
