"""Pick the executor once: Celery on Redis in the production topology, in-process otherwise.

``VALIDIBOT_EXECUTOR`` (``celery`` | ``in_process`` | ``multiprocess``) forces a choice;
otherwise Celery is used when ``CELERY_BROKER_URL`` or ``REDIS_URL`` is set in the environment,
and the in-process executor (no Redis, no workers) when neither is, which is the embedded
default that ``validibot-ops demo`` and ``dagster dev`` on a bare laptop use.

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
VISIBILITY_MARGIN_SECONDS = 600


class ExecutorConfigError(RuntimeError):
    """``VALIDIBOT_EXECUTOR`` names an unknown executor, or Celery has no broker URL."""


def executor_kind() -> str:
    forced = os.environ.get(EXECUTOR_ENV, "").strip().lower()
    if forced:
        if forced not in {"celery", "in_process", "multiprocess"}:
            raise ExecutorConfigError(
                f"{EXECUTOR_ENV}={forced!r}: expected celery, in_process or multiprocess"
            )
        return forced
    return "celery" if first_set(BROKER_ENVS) else "in_process"


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
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": visibility_timeout_seconds(),
            "max_retries": 3,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 3,
        },
        "task_default_queue": "default",
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
