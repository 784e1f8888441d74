"""The GraphQL client against a real webserver and daemon: launch, wait, summary, schedules."""

from __future__ import annotations

import pytest

from validibot.operations.dagster_client import (
    DagsterClient,
    DagsterUnavailable,
    JobNotFound,
    RunNotFound,
    ScheduleNotFound,
)

pytestmark = [pytest.mark.services, pytest.mark.timeout(300)]


def test_launch_wait_and_read_the_summary(running_surfaces):
    client = running_surfaces.client
    run_id = client.launch_task("clear_sessions", trigger="graphql")

    run = running_surfaces.wait(run_id)

    assert run.status == "SUCCESS"
    assert run.tags["validibot/trigger"] == "graphql"
    assert run.tags["validibot/task"] == "clear_sessions"
    assert run.duration_s is not None and run.duration_s >= 0
    summary = client.run_summary(run_id)
    assert summary["status"] == "completed"
    assert summary["dry_run"] is False
    assert summary["deleted"] == 0
    assert run_id in [r.run_id for r in client.recent_runs("clear_sessions")]


def test_dry_run_config_reaches_the_op(running_surfaces):
    client = running_surfaces.client
    run_id = client.launch_task("cleanup_idempotency_keys", dry_run=True)
    assert running_surfaces.wait(run_id).status == "SUCCESS"
    assert client.run_summary(run_id)["dry_run"] is True


def test_a_failed_run_reports_the_command_error(running_surfaces):
    client = running_surfaces.client
    run_id = client.launch_task("test_always_fail")
    assert running_surfaces.wait(run_id).status == "FAILURE"
    summary = client.run_summary(run_id)
    assert summary["status"] == "failed"
    assert summary["error"]


def test_recent_runs_are_per_task(running_surfaces):
    client = running_surfaces.client
    run_id = client.launch_task("test_noop", trigger="graphql")
    running_surfaces.wait(run_id)
    assert {r.job_name for r in client.recent_runs("test_noop")} == {"test_noop"}
    assert run_id not in [r.run_id for r in client.recent_runs("clear_sessions")]


def test_unknown_job_and_run_are_clear_errors(running_surfaces):
    with pytest.raises(JobNotFound, match="no_such_task"):
        running_surfaces.client.launch_task("no_such_task")
    with pytest.raises(RunNotFound):
        running_surfaces.client.get_run("00000000-0000-0000-0000-000000000000")
    with pytest.raises(ScheduleNotFound):
        running_surfaces.client.stop_schedule("no_such_schedule")


def test_schedule_stop_and_start_round_trip(running_surfaces):
    client = running_surfaces.client
    name = "cleanup_callback_receipts_schedule"  # weekly: never ticks during the test
    assert client.get_schedule(name).status == "RUNNING"
    assert client.stop_schedule(name) == "STOPPED"
    assert client.get_schedule(name).status == "STOPPED"
    assert client.start_schedule(name) == "RUNNING"
    assert client.get_schedule(name).status == "RUNNING"


def test_unreachable_webserver(dead_url):
    client = DagsterClient(dead_url, timeout=2)
    with pytest.raises(DagsterUnavailable, match="unreachable"):
        client.launch_task("clear_sessions")
    with pytest.raises(DagsterUnavailable):
        client.schedules()


def test_a_url_that_is_not_the_webserver(tmp_path):
    """A server that answers but not with GraphQL (here: a plain HTTP server) is named so."""
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(DagsterUnavailable, match="webserver .* answered HTTP 501"):
            DagsterClient(url, timeout=2).schedules()
    finally:
        server.shutdown()
        server.server_close()
