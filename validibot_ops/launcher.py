"""The instance's run launcher: warm runs inside Celery workers, or the Celery executor's way.

``dagster.yaml`` names :class:`ValidibotRunLauncher` once; ``VALIDIBOT_RUN_MODE`` picks what
it does (``validibot_ops.executors.run_mode``):

- ``warm`` (default): :class:`WarmRunLauncher`, dagster-celery's ``CeleryRunLauncher`` with
  four changes: a terminated run is reported CANCELING before the revoke (so it ends CANCELED
  and is not retried), the run task gets a Celery hard time limit (the task's hard limit plus
  a margin, the backstop for a command that never reaches a batch boundary), the worker
  heartbeats while the run executes and a run with no heartbeat is reported dead to run
  monitoring, and a broker that is down fails the launch naming the broker (password hidden);
- ``celery-executor``: Dagster's ``DefaultRunLauncher`` (a ``dagster api execute_run`` process
  per run, steps on the workers through the Celery executor). Also used when no broker is
  set (the embedded default, in-process executor).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster import DefaultRunLauncher
from dagster import _check as check
from dagster_celery.config import TASK_EXECUTE_JOB_NAME
from dagster_celery.launcher import CeleryRunLauncher
from dagster_celery.tags import DAGSTER_CELERY_QUEUE_TAG, DAGSTER_CELERY_TASK_ID_TAG

from validibot.core.broker import BROKER_ENVS, first_set
from validibot_ops.dagster_internals import (
    MAX_RETRIES_TAG,
    CheckRunHealthResult,
    ConfigurableClass,
    ConfigurableClassData,
    ExecuteRunArgs,
    LaunchRunContext,
    ResumeRunContext,
    RunLauncher,
    WorkerStatus,
    pack_value,
)
from validibot_ops.executors import WARM, celery_app_config, run_mode
from validibot_ops.tags import MAX_RUNTIME_TAG

logger = logging.getLogger(__name__)

DEFAULT_HEARTBEAT_TIMEOUT_SECONDS = 120
DEFAULT_TIME_LIMIT_MARGIN_SECONDS = 30
HEARTBEAT_KEY_PREFIX = "validibot:run-heartbeat:"


def heartbeat_key(run_id: str) -> str:
    """The Redis key a warm run's worker refreshes while the run executes."""
    return f"{HEARTBEAT_KEY_PREFIX}{run_id}"


class BrokerUnavailableError(RuntimeError):
    """The run could not be handed to the Celery broker."""


def redacted(url: str) -> str:
    """The broker URL with its password masked, for messages and the run's event log."""
    from kombu.utils.url import maybe_sanitize_url

    return maybe_sanitize_url(url)


def celery_time_limit(run: dg.DagsterRun, margin: int) -> int | None:
    """The run task's Celery hard limit: the job's ``dagster/max_runtime`` (the task's hard
    limit plus a stop margin, validibot_ops.jobs) plus ``margin``."""
    raw = run.tags.get(MAX_RUNTIME_TAG)
    return int(float(raw)) + margin if raw else None


class WarmRunLauncher(CeleryRunLauncher):
    """``CeleryRunLauncher`` for warm runs (see the module docstring); broker, backend and
    Celery settings come from the same function the workers use, so both sides agree."""

    def __init__(self, heartbeat_timeout_seconds: int, time_limit_margin_seconds: int) -> None:
        config = celery_app_config()
        self.heartbeat_timeout_seconds = heartbeat_timeout_seconds
        self.time_limit_margin_seconds = time_limit_margin_seconds
        super().__init__(
            default_queue=config["config_source"]["task_default_queue"],
            broker=config["broker"],
            backend=config["backend"],
            include=config["include"],
            config_source=config["config_source"],
        )
        self._redis: Any = None

    # -- launching ------------------------------------------------------------------------
    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        args = ExecuteRunArgs(
            job_origin=check.not_none(run.job_code_origin),
            run_id=run.run_id,
            instance_ref=self._instance.get_ref(),
            set_exit_code_on_failure=True,
        )
        # Sent by name: the worker's own task (validibot_ops.run_tasks) runs it, heartbeating.
        signature = self.celery.signature(
            TASK_EXECUTE_JOB_NAME,
            kwargs={
                "execute_job_args_packed": pack_value(args),
                "heartbeat_seconds": self.heartbeat_timeout_seconds,
            },
            immutable=True,
        )
        self._launch_celery_task_run(
            run=run, task_signature=signature, routing_key=TASK_EXECUTE_JOB_NAME
        )

    def _launch_celery_task_run(
        self, run: dg.DagsterRun, task_signature: Any, routing_key: str
    ) -> None:
        from kombu.exceptions import OperationalError

        queue = run.tags.get(DAGSTER_CELERY_QUEUE_TAG, self.default_queue)
        time_limit = celery_time_limit(run, self.time_limit_margin_seconds)
        try:
            # ignore_result: nothing waits on the result (run state lives in Dagster), and
            # waiting would subscribe to the result backend before even publishing.
            result = task_signature.apply_async(
                queue=queue,
                routing_key=f"{queue}.{routing_key}",
                time_limit=time_limit,
                ignore_result=True,
            )
        except (OperationalError, OSError) as exc:
            # The redis client's own message names host and port only; say which broker.
            raise BrokerUnavailableError(
                f"could not send run {run.run_id} to queue {queue!r}: the Celery broker "
                f"{redacted(self.broker or '')} is unreachable ({exc})"
            ) from None
        self._instance.add_run_tags(run.run_id, {DAGSTER_CELERY_TASK_ID_TAG: result.task_id})
        self._instance.report_engine_event(
            f"Run sent to Celery queue {queue!r} (task {result.task_id}, hard time limit "
            f"{time_limit or 'none'} s).",
            run,
            cls=self.__class__,
        )

    # -- terminating ----------------------------------------------------------------------
    def terminate(self, run_id: str) -> bool:
        """Report CANCELING, then revoke the run's task.

        The revoke stops a run still waiting in Redis; a run already executing sees
        CANCELING at its next batch boundary (the op's stop check), stops, and ends
        CANCELED. It is not killed with ``terminate=True``: a killed pool process leaves a
        half-written event log and a FAILURE that run retries would launch again.
        """
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        task_id = run.tags.get(DAGSTER_CELERY_TASK_ID_TAG)
        if run.status == dg.DagsterRunStatus.CANCELING:
            # Already reported (a second terminate, or run monitoring's max runtime).
            if task_id:
                self.celery.control.revoke(task_id, terminate=False)
            return True
        if run.status != dg.DagsterRunStatus.STARTED:
            # Not executing yet: the revoke drops the waiting task (and the worker refuses a
            # run that is no longer STARTING), so the run is over now.
            if task_id:
                self.celery.control.revoke(task_id, terminate=False)
            self._instance.report_run_canceled(run, message="Canceled before it started.")
            return True
        self._instance.report_run_canceling(
            run, message="Canceling: the command stops at its next batch boundary."
        )
        if task_id:
            self.celery.control.revoke(task_id, terminate=False)
        return True

    @property
    def supports_resume_run(self) -> bool:
        # A run whose worker died is failed and retried as a new run (run retries), never
        # resumed in place: a fresh run gets a fresh deadline and a clean event log.
        return False

    # -- health ---------------------------------------------------------------------------
    def _heartbeats(self) -> Any:
        if self._redis is None:
            import redis

            self._redis = redis.Redis.from_url(self.broker or "", socket_timeout=10)
        return self._redis

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        """RUNNING while the worker's heartbeat key lives; FAILED once it expired.

        Celery's own task state cannot tell: a SIGKILLed worker leaves the task STARTED
        forever. The key's TTL is ``heartbeat_timeout_seconds``.
        """
        if self._heartbeats().exists(heartbeat_key(run.run_id)):
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        killed = self._killed_by_time_limit(run)
        if killed:
            # The command was killed for outliving its hard limit: running it again would
            # only hit the same limit.
            self._instance.add_run_tags(run.run_id, {MAX_RETRIES_TAG: "0"})
            return CheckRunHealthResult(WorkerStatus.FAILED, killed)
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"no heartbeat from the run's Celery worker for over "
            f"{self.heartbeat_timeout_seconds} s: the worker died or lost Redis",
        )

    def _killed_by_time_limit(self, run: dg.DagsterRun) -> str | None:
        task_id = run.tags.get(DAGSTER_CELERY_TASK_ID_TAG)
        if not task_id:
            return None
        with contextlib.suppress(Exception):
            result = self.celery.AsyncResult(task_id)
            if result.state == "FAILURE" and "TimeLimitExceeded" in repr(result.result):
                limit = celery_time_limit(run, self.time_limit_margin_seconds)
                return f"the Celery hard time limit ({limit} s) killed the run's command"
        return None


class ValidibotRunLauncher(RunLauncher, ConfigurableClass):
    """The launcher ``dagster.yaml`` configures; delegates to the run mode's launcher.

    Config:
        heartbeat_timeout_seconds: a warm run whose worker has not refreshed its heartbeat
            for this long is failed by run monitoring (then retried by run retries).
        time_limit_margin_seconds: added to a job's ``dagster/max_runtime`` for the run
            task's Celery hard time limit.
    """

    def __init__(
        self,
        heartbeat_timeout_seconds: int = DEFAULT_HEARTBEAT_TIMEOUT_SECONDS,
        time_limit_margin_seconds: int = DEFAULT_TIME_LIMIT_MARGIN_SECONDS,
        inst_data: ConfigurableClassData | None = None,
    ) -> None:
        self._inst_data = inst_data
        self.mode = run_mode()
        # Without a broker (the embedded default) there are no workers: runs are processes.
        warm = self.mode == WARM and first_set(BROKER_ENVS) is not None
        self.delegate: RunLauncher = (
            WarmRunLauncher(heartbeat_timeout_seconds, time_limit_margin_seconds)
            if warm
            else DefaultRunLauncher()
        )
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict[str, dg.Field]:
        return {
            "heartbeat_timeout_seconds": dg.Field(
                dg.IntSource, is_required=False, default_value=DEFAULT_HEARTBEAT_TIMEOUT_SECONDS
            ),
            "time_limit_margin_seconds": dg.Field(
                dg.IntSource, is_required=False, default_value=DEFAULT_TIME_LIMIT_MARGIN_SECONDS
            ),
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> ValidibotRunLauncher:
        return cls(inst_data=inst_data, **config_value)

    def register_instance(self, instance: dg.DagsterInstance) -> None:
        super().register_instance(instance)
        self.delegate.register_instance(instance)

    def launch_run(self, context: LaunchRunContext) -> None:
        self.delegate.launch_run(context)

    def terminate(self, run_id: str) -> bool:
        return self.delegate.terminate(run_id)

    @property
    def supports_resume_run(self) -> bool:
        return self.delegate.supports_resume_run

    def resume_run(self, context: ResumeRunContext) -> None:
        self.delegate.resume_run(context)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return self.delegate.supports_check_run_worker_health

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        return self.delegate.check_run_worker_health(run)

    def get_run_worker_debug_info(
        self, run: dg.DagsterRun, include_container_logs: bool | None = True
    ) -> str | None:
        return self.delegate.get_run_worker_debug_info(run, include_container_logs)

    def join(self, timeout: int = 30) -> None:
        self.delegate.join(timeout)

    def dispose(self) -> None:
        self.delegate.dispose()
