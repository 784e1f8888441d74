"""The run launcher and the run mode switch, without a daemon: start-up errors and a launch
whose broker is down (a real Redis client against a closed port)."""

from __future__ import annotations

import socket

import dagster as dg
import pytest
from celery import Celery
from dagster._core.launcher.default_run_launcher import DefaultRunLauncher
from dagster_celery.config import TASK_EXECUTE_JOB_NAME

from validibot_ops import executors
from validibot_ops.launcher import (
    BrokerUnavailableError,
    ValidibotRunLauncher,
    WarmRunLauncher,
    celery_time_limit,
)
from validibot_ops.run_tasks import (
    LauncherTasksMissingError,
    check_launcher_tasks,
    register_run_tasks,
)
from validibot_ops.tags import CELERY_QUEUE_TAG, MAX_RUNTIME_TAG


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("VALIDIBOT_RUN_MODE", "VALIDIBOT_EXECUTOR", "CELERY_BROKER_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unknown_run_mode_fails_naming_the_variable(clean_env):
    clean_env.setenv("VALIDIBOT_RUN_MODE", "lukewarm")
    with pytest.raises(executors.ExecutorConfigError, match="VALIDIBOT_RUN_MODE='lukewarm'"):
        executors.run_mode()
    with pytest.raises(executors.ExecutorConfigError, match="lukewarm"):
        ValidibotRunLauncher()


def test_warm_mode_cannot_be_combined_with_the_celery_executor(clean_env):
    clean_env.setenv("VALIDIBOT_RUN_MODE", "warm")
    clean_env.setenv("VALIDIBOT_EXECUTOR", "celery")
    with pytest.raises(executors.ExecutorConfigError, match="celery-executor"):
        executors.executor_kind()


def test_the_mode_picks_the_launcher(clean_env):
    assert isinstance(ValidibotRunLauncher().delegate, DefaultRunLauncher)  # no broker
    clean_env.setenv("REDIS_URL", f"redis://127.0.0.1:{_closed_port()}/0")
    launcher = ValidibotRunLauncher(heartbeat_timeout_seconds=45)
    assert isinstance(launcher.delegate, WarmRunLauncher)
    assert launcher.supports_check_run_worker_health and not launcher.supports_resume_run
    clean_env.setenv("VALIDIBOT_RUN_MODE", "celery-executor")
    assert isinstance(ValidibotRunLauncher().delegate, DefaultRunLauncher)
    assert executors.executor_kind() == "celery"


def test_a_launch_with_the_broker_down_fails_naming_the_broker_without_its_password(clean_env):
    port = _closed_port()
    clean_env.setenv("REDIS_URL", f"redis://:s3cret-pw@127.0.0.1:{port}/0")
    launcher = ValidibotRunLauncher().delegate
    run = dg.DagsterRun(
        job_name="purge_expired_submissions",
        run_id="0f0f0f0f-0000-0000-0000-000000000000",
        tags={CELERY_QUEUE_TAG: "default", MAX_RUNTIME_TAG: "1860"},
    )
    signature = launcher.celery.signature(TASK_EXECUTE_JOB_NAME, kwargs={}, immutable=True)
    with pytest.raises(BrokerUnavailableError) as caught:
        launcher._launch_celery_task_run(run, signature, TASK_EXECUTE_JOB_NAME)
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message and "'default'" in message, message
    assert "s3cret-pw" not in message and "**" in message, message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_the_celery_time_limit_is_the_max_runtime_plus_the_margin():
    run = dg.DagsterRun(job_name="j", run_id="r", tags={MAX_RUNTIME_TAG: "1860"})
    assert celery_time_limit(run, 30) == 1890
    assert celery_time_limit(dg.DagsterRun(job_name="j", run_id="r"), 30) is None


def test_a_worker_without_the_launcher_tasks_fails_at_start_up():
    bare = Celery("bare")
    with pytest.raises(LauncherTasksMissingError, match=TASK_EXECUTE_JOB_NAME):
        check_launcher_tasks(bare)
    register_run_tasks(bare)
    check_launcher_tasks(bare)
