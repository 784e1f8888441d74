"""Worker side of warm runs: the Celery tasks a run executes in, heartbeating while it runs.

``validibot-ops worker`` registers them (:func:`register_run_tasks`) next to dagster-celery's
step task, so one worker serves both run modes. ``execute_job`` runs the whole run in the
pool process that took it (the jobs use the in-process executor in warm mode): no
``dagster api execute_run`` process, Django and the code location stay loaded between runs.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import dagster as dg
from celery import Celery
from dagster_celery.config import TASK_EXECUTE_JOB_NAME, TASK_RESUME_JOB_NAME

from validibot.tasks.vocabulary import STARTABLE_STATUSES
from validibot_ops.dagster_internals import EngineEventData
from validibot_ops.launcher import DEFAULT_HEARTBEAT_TIMEOUT_SECONDS, heartbeat_key

logger = logging.getLogger(__name__)

LAUNCHER_TASKS = (TASK_EXECUTE_JOB_NAME, TASK_RESUME_JOB_NAME)
# The label dagster-celery's step events use for the worker node; warm runs report it too.
WORKER_METADATA_LABEL = "Celery worker"
STARTABLE = frozenset(dg.DagsterRunStatus(name) for name in STARTABLE_STATUSES)


class LauncherTasksMissingError(RuntimeError):
    """A worker would consume run tasks it cannot execute."""


@contextlib.contextmanager
def heartbeat(client: Any, run_id: str, ttl: int) -> Iterator[None]:
    """Keep ``heartbeat_key(run_id)`` alive (TTL ``ttl``) from a thread while the body runs.

    The first beat is written before the body starts, so a STARTED run always has one; a
    SIGKILLed process stops beating and the key expires ``ttl`` seconds later, which the
    launcher's health check (run monitoring) turns into a failed, retried run.
    """
    key = heartbeat_key(run_id)
    client.set(key, str(time.time()), ex=ttl)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(max(1.0, ttl / 4)):
            try:
                client.set(key, str(time.time()), ex=ttl)
            except Exception:  # noqa: BLE001 - a broker blip must not end the run; the key has ttl to spare
                logger.warning("heartbeat of run %s not refreshed", run_id, exc_info=True)

    thread = threading.Thread(target=beat, name=f"heartbeat-{run_id[:8]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
        with contextlib.suppress(Exception):
            client.delete(key)


_process_state: dict[str, Any] = {}


def _instance() -> dg.DagsterInstance:
    """One instance per pool process, kept between runs (its storage opens connections per
    use), so a warm run does not parse dagster.yaml and build storages every time."""
    if "instance" not in _process_state:
        _process_state["instance"] = dg.DagsterInstance.get()
    return _process_state["instance"]


def _redis(url: str) -> Any:
    if "redis" not in _process_state:
        import redis

        _process_state["redis"] = redis.Redis.from_url(url, socket_timeout=10)
    return _process_state["redis"]


def _send_to_null(_event: Any) -> None:
    pass


def execute_warm_run(
    run_id: str, broker_url: str, heartbeat_seconds: int, hostname: str = ""
) -> int:
    """Execute the run in this process, unless it is no longer waiting to start.

    A redelivered task (visibility timeout, a worker lost mid-run) or a late one (the run was
    canceled or failed meanwhile) finds its run past STARTING and returns without writing a
    single event: after a run has finished nothing writes into it.
    """
    from validibot_ops.dagster_internals import _execute_run_command_body

    instance = _instance()
    run = instance.get_run_by_id(run_id)
    if run is None or run.status not in STARTABLE:
        status = run.status.value if run else "unknown"
        logger.warning(
            "refusing run %s on %s: it is %s, not waiting to start (late or redelivered task)",
            run_id,
            hostname,
            status,
        )
        return 0
    # Which worker executes the run, in the run's own event log (the Celery executor's step
    # events say the same for each step under the same label).
    instance.report_engine_event(
        f"Executing run in Celery worker {hostname}",
        run,
        EngineEventData({WORKER_METADATA_LABEL: dg.MetadataValue.text(hostname)}),
    )
    with heartbeat(_redis(broker_url), run_id, heartbeat_seconds):
        return _execute_run_command_body(
            instance=instance,
            run_id=run_id,
            write_stream_fn=_send_to_null,
            set_exit_code_on_failure=True,
        )


def register_run_tasks(app: Celery) -> None:
    """Register ``execute_job`` (warm runs) and dagster-celery's ``resume_job`` on ``app``."""
    from dagster_celery.tasks import create_resume_job_task

    from validibot_ops.dagster_internals import ExecuteRunArgs, unpack_value

    broker_url = app.conf.broker_url

    @app.task(bind=True, name=TASK_EXECUTE_JOB_NAME, track_started=True)
    def execute_job(
        self: Any,
        execute_job_args_packed: Any,
        heartbeat_seconds: int = DEFAULT_HEARTBEAT_TIMEOUT_SECONDS,
    ) -> int:
        args = unpack_value(execute_job_args_packed, as_type=ExecuteRunArgs)
        return execute_warm_run(args.run_id, broker_url, heartbeat_seconds, self.request.hostname)

    create_resume_job_task(app)


def check_launcher_tasks(app: Celery) -> None:
    """Fail at start-up, naming them, if the app lacks a task the run launcher sends."""
    missing = [name for name in LAUNCHER_TASKS if name not in app.tasks]
    if missing:
        raise LauncherTasksMissingError(
            f"this worker does not register {', '.join(missing)}, which the warm run launcher "
            "sends: runs sent to its queues would fail. Start workers with `validibot-ops "
            "worker` (it registers them), not a bare celery/dagster-celery worker."
        )
