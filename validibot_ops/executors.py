"""Pick the run mode and the executor once, from the environment.

With a broker (``CELERY_BROKER_URL`` or ``REDIS_URL``), ``VALIDIBOT_RUN_MODE`` picks how runs
execute (docs/architecture.md, "Run modes"):

- ``warm`` (the default): the run launcher sends each run to a Celery worker, which executes
  it in a warm pool process with the in-process executor (``validibot_ops.launcher``);
- ``celery-executor``: each run is a fresh ``dagster api execute_run`` process whose steps go to
  the workers through dagster-celery's Celery executor (the shape for multi-op jobs).

Without a broker the in-process executor runs everything (no Redis, no workers): the embedded
default that ``validibot-ops demo`` and ``dagster dev`` on a bare laptop use.
``VALIDIBOT_EXECUTOR`` (``celery`` | ``in_process`` | ``multiprocess``) still forces an
executor; ``celery`` implies the ``celery-executor`` run mode.

The same :func:`celery_app_config` feeds the executor (which enqueues steps) and
``validibot-ops worker`` (which consumes them), so the two cannot disagree.
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from validibot.core.broker import BACKEND_ENVS, BROKER_ENVS, first_set
from validibot.tasks.registry import get_tasks

EXECUTOR_ENV = "VALIDIBOT_EXECUTOR"
RUN_MODE_ENV = "VALIDIBOT_RUN_MODE"
WARM = "warm"
CELERY_EXECUTOR = "celery-executor"
RUN_MODES = (WARM, CELERY_EXECUTOR)
VISIBILITY_MARGIN_SECONDS = 600
MAX_TASKS_PER_CHILD = 100
MAX_MEMORY_PER_CHILD_KIB = 400_000


class ExecutorConfigError(RuntimeError):
    """``VALIDIBOT_EXECUTOR`` names an unknown executor, or Celery has no broker URL."""


def _forced_executor() -> str:
    forced = os.environ.get(EXECUTOR_ENV, "").strip().lower()
    if forced and forced not in {"celery", "in_process", "multiprocess"}:
        raise ExecutorConfigError(
            f"{EXECUTOR_ENV}={forced!r}: expected celery, in_process or multiprocess"
        )
    return forced


def run_mode() -> str:
    """``warm`` or ``celery-executor`` (``VALIDIBOT_RUN_MODE``; unknown values fail here, when
    the code location, the daemon's launcher or a worker starts)."""
    mode = os.environ.get(RUN_MODE_ENV, "").strip().lower()
    forced = _forced_executor()
    if not mode:
        return CELERY_EXECUTOR if forced == "celery" else WARM
    if mode not in RUN_MODES:
        raise ExecutorConfigError(
            f"{RUN_MODE_ENV}={mode!r}: expected {' or '.join(RUN_MODES)} (default {WARM})"
        )
    if mode == WARM and forced == "celery":
        # A warm run waiting on steps queued to the pool it occupies can deadlock it.
        raise ExecutorConfigError(
            f"{RUN_MODE_ENV}=warm runs each run inside a worker with the in-process executor; "
            f"it cannot be combined with {EXECUTOR_ENV}=celery (use {RUN_MODE_ENV}="
            f"{CELERY_EXECUTOR} for the Celery executor)"
        )
    return mode


def executor_kind() -> str:
    """The jobs' executor: forced by ``VALIDIBOT_EXECUTOR``, else from the run mode."""
    mode = run_mode()
    forced = _forced_executor()
    if forced:
        return forced
    if not first_set(BROKER_ENVS):
        return "in_process"
    return "celery" if mode == CELERY_EXECUTOR else "in_process"


def visibility_timeout_seconds() -> int:
    """Above every task's hard limit, so Redis never redelivers a step that is still running
    (celery/celery#5935: a long task redelivered after the 1 h default runs twice)."""
    longest = max((t.hard_time_limit_seconds for t in get_tasks()), default=1800)
    return max(3600, longest + VISIBILITY_MARGIN_SECONDS)


def celery_config_source() -> dict[str, Any]:
    """Celery settings shared by the executor and the workers (see docs/operations.md)."""
    return {
        # A step is acknowledged only after it finishes: a worker killed mid-step leaves the
        # message on the broker for another worker instead of losing it.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # One step at a time per worker process; no worker hoards steps it cannot start.
        "worker_prefetch_multiplier": 1,
        "worker_concurrency": int(os.environ.get("CELERY_WORKER_CONCURRENCY", "1")),
        # A pool process is replaced after this many tasks or once it holds this much memory
        # (checked after each task), so a long-lived worker's RSS stays flat.
        "worker_max_tasks_per_child": MAX_TASKS_PER_CHILD,
        "worker_max_memory_per_child": MAX_MEMORY_PER_CHILD_KIB,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": visibility_timeout_seconds(),
            "max_retries": 3,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 3,
        },
        "task_default_queue": "default",
        # Warm runs are sent with ignore_result; their failures (a hard time limit kill) are
        # still stored for the launcher's health check.
        "task_store_errors_even_if_ignored": True,
    }


def celery_executor_config() -> dict[str, Any]:
    """The executor's config; URLs stay ``{"env": ...}`` so no secret lands in run config."""
    broker_env = first_set(BROKER_ENVS)
    if broker_env is None:
        raise ExecutorConfigError(
            f"the Celery executor needs a broker: set CELERY_BROKER_URL or REDIS_URL "
            f"(or {EXECUTOR_ENV}=in_process)"
        )
    backend_env = first_set(BACKEND_ENVS) or broker_env
    return {
        "broker": {"env": broker_env},
        "backend": {"env": backend_env},
        "include": ["validibot_ops.definitions"],
        "config_source": celery_config_source(),
    }


def celery_app_config() -> dict[str, Any]:
    """The resolved config a worker builds its Celery app from (URLs read from the env now)."""
    config = celery_executor_config()
    return {
        "broker": os.environ[config["broker"]["env"]],
        "backend": os.environ[config["backend"]["env"]],
        "include": config["include"],
        "config_source": config["config_source"],
    }


def build_executor() -> dg.ExecutorDefinition:
    kind = executor_kind()
    if kind == "in_process":
        return dg.in_process_executor
    if kind == "multiprocess":
        return dg.multiprocess_executor
    from dagster_celery import celery_executor

    return celery_executor.configured(celery_executor_config(), name="validibot_celery")
