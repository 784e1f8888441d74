"""Upstream Validibot's registry API, over this project's one registry (no Django, no Dagster).

Downstream packages (validibot-cloud, -pro, -enterprise) are written against upstream's
``validibot.core.tasks.registry``: ``ScheduledAdminTaskDefinition`` and its accessors. That
module re-exports what is defined here. There is one registry, seen in two shapes:

- a definition registered in upstream's shape becomes a :class:`MaintenanceTask` with the
  project's richer fields at their defaults (``command`` empty: its op runs the Celery task
  that ``celery_task`` names), and reads back exactly as it was registered;
- a task of the project's shape (every built-in) reads back through these accessors in
  upstream's shape, with upstream's kebab id (:func:`~validibot.tasks.registry.external_id_of`).

The id rule (one, documented in docs/adding-a-task.md): hyphens become underscores, so the
upstream id ``purge-expired-submissions`` is the task, job and op ``purge_expired_submissions``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from croniter import croniter

from validibot.tasks import registry
from validibot.tasks.registry import (
    ALL_BACKENDS,
    BACKEND_AWS,
    BACKEND_DAGSTER,
    BACKEND_GCP,
    BUILTIN_TASKS,
    ID_PATTERN,
    MaintenanceTask,
    RegistryError,
    external_id_of,
    task_id_for,
)

API_PREFIX = "/api/v1/scheduled/"


class Backend(StrEnum):
    """Which scheduler runs a task, in upstream's words. Here Dagster replaces Celery Beat, so
    ``celery`` means the Dagster schedule; ``aws`` (EventBridge) is not implemented."""

    CELERY = "celery"
    GCP = "gcp"
    AWS = "aws"
    ALL = "all"


class ScheduleType(StrEnum):
    CRON = "cron"
    INTERVAL = "interval"


@dataclass(frozen=True)
class ScheduledAdminTaskDefinition:
    """One scheduled task in upstream's shape (field order and defaults are upstream's)."""

    id: str
    name: str
    celery_task: str
    api_endpoint: str
    schedule_cron: str
    schedule_interval_minutes: int | None = None
    description: str = ""
    enabled: bool = True
    backends: tuple[Backend, ...] = (Backend.ALL,)

    @property
    def job_name(self) -> str:
        """Upstream's scheduler job name (Cloud Scheduler); the Dagster job is
        :func:`~validibot.tasks.registry.task_id_for` of the id."""
        return f"validibot-{self.id}"

    @property
    def schedule_type(self) -> ScheduleType:
        return ScheduleType.CRON if self.schedule_cron else ScheduleType.INTERVAL

    def supports_backend(self, backend: Backend | str) -> bool:
        """True for each of its backends, for every backend when it has ``all``, and for
        ``all`` itself."""
        wanted = Backend(backend)
        return wanted is Backend.ALL or Backend.ALL in self.backends or wanted in self.backends


_OURS: dict[Backend, frozenset[str]] = {
    Backend.CELERY: frozenset({BACKEND_DAGSTER}),
    Backend.GCP: frozenset({BACKEND_GCP}),
    Backend.AWS: frozenset({BACKEND_AWS}),
    Backend.ALL: ALL_BACKENDS,
}


def cron_for_interval(minutes: int) -> str:
    """The cron that fires exactly every ``minutes``; :class:`ValueError` when none does.

    Cron steps restart every hour and every day, so only divisors of 60 minutes and of 24
    hours are exact: 7 minutes or 90 minutes would drift at the hour or the day, and the task
    would silently run on another rhythm than its author wrote.
    """
    if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 1:
        raise ValueError(f"schedule_interval_minutes {minutes!r} must be a whole number >= 1")
    if minutes < 60 and 60 % minutes == 0:
        return "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
    hours, rest = divmod(minutes, 60)
    if rest == 0 and hours <= 24 and 24 % hours == 0:
        if hours == 24:
            return "0 0 * * *"
        return "0 * * * *" if hours == 1 else f"0 */{hours} * * *"
    raise ValueError(
        f"schedule_interval_minutes {minutes} has no exact cron (only divisors of 60 minutes "
        "or of 24 hours do); set schedule_cron instead"
    )


def _cron_of(definition: ScheduledAdminTaskDefinition) -> str:
    if definition.schedule_cron:
        if not isinstance(definition.schedule_cron, str) or not croniter.is_valid(
            definition.schedule_cron
        ):
            raise ValueError(f"schedule_cron {definition.schedule_cron!r} does not parse")
        return definition.schedule_cron
    if definition.schedule_interval_minutes is None:
        raise ValueError("schedule_cron or schedule_interval_minutes is required")
    return cron_for_interval(definition.schedule_interval_minutes)


def _backends_of(definition: ScheduledAdminTaskDefinition) -> frozenset[str]:
    if isinstance(definition.backends, str) or not definition.backends:
        raise ValueError(
            f"backends {definition.backends!r} must be a non-empty tuple of Backend values"
        )
    ours: set[str] = set()
    for value in definition.backends:
        try:
            ours |= _OURS[Backend(value)]
        except ValueError:
            raise ValueError(
                f"unknown backend {value!r}; expected one of {[b.value for b in Backend]}"
            ) from None
    return frozenset(ours)


def _check_endpoint(definition: ScheduledAdminTaskDefinition, task_id: str) -> None:
    served = {f"{API_PREFIX}{definition.id}/", f"{API_PREFIX}{task_id}/"}
    if definition.api_endpoint and definition.api_endpoint not in served:
        raise ValueError(
            f"api_endpoint {definition.api_endpoint!r} is not served: the HTTP trigger answers "
            f"{' or '.join(sorted(served))}"
        )


def to_task(definition: ScheduledAdminTaskDefinition) -> MaintenanceTask:
    """The project's task for an upstream-shaped definition; :class:`RegistryError` naming the
    definition's id and the cause when any field is unusable."""
    if not isinstance(definition, ScheduledAdminTaskDefinition):
        raise TypeError(f"expected a ScheduledAdminTaskDefinition, got {type(definition).__name__}")
    label = definition.id
    if not isinstance(label, str) or not ID_PATTERN.match(task_id_for(label)):
        raise RegistryError(
            f"scheduled task {label!r}: id must be lowercase letters, digits and '-' or '_', "
            "starting with a letter (hyphens become underscores in the Dagster job name)"
        )
    task_id = task_id_for(label)
    try:
        cron = _cron_of(definition)
        backends = _backends_of(definition)
        _check_endpoint(definition, task_id)
        if not definition.celery_task:
            raise ValueError("celery_task is required (the registered name of a Celery task)")
    except ValueError as exc:
        raise RegistryError(f"scheduled task {label!r}: {exc}") from None
    task = MaintenanceTask(
        id=task_id,
        name=definition.name,
        command="",
        cron=cron,
        description=definition.description,
        enabled=definition.enabled,
        backends=backends,
        celery_task=definition.celery_task,
        upstream=definition,
    )
    task.validate()  # its messages name the upstream id (external_id_of)
    return task


def _backends_for(task: MaintenanceTask) -> tuple[Backend, ...]:
    if task.backends >= ALL_BACKENDS:
        return (Backend.ALL,)
    order = (Backend.CELERY, Backend.GCP, Backend.AWS)
    return tuple(b for b in order if _OURS[b] <= task.backends)


def to_definition(task: MaintenanceTask) -> ScheduledAdminTaskDefinition:
    """The task in upstream's shape: as registered when it came in that shape."""
    if isinstance(task.upstream, ScheduledAdminTaskDefinition):
        return task.upstream
    external = external_id_of(task)
    return ScheduledAdminTaskDefinition(
        id=external,
        name=task.name,
        celery_task=task.celery_task,
        api_endpoint=f"{API_PREFIX}{external}/",
        schedule_cron=task.cron,
        description=task.description,
        enabled=task.enabled,
        backends=_backends_for(task),
    )


SCHEDULED_ADMIN_TASKS: tuple[ScheduledAdminTaskDefinition, ...] = tuple(
    to_definition(task) for task in BUILTIN_TASKS
)
"""The built-ins in upstream's shape. Read tasks through the accessors: this misses every
registered one (upstream documents reading it directly as a bug)."""


def register_scheduled_admin_task(task: ScheduledAdminTaskDefinition) -> None:
    """Register a downstream task (from ``AppConfig.ready()`` or an entry-point module).

    Raises:
        ValueError: a task with this id is already registered (upstream's message), or the
            definition is invalid (:class:`RegistryError`, a ``ValueError``, naming its id).
            The one exception: the same definition registered once by the plugin loader
            (entry point) and once by ``AppConfig.ready()`` (see
            :func:`~validibot.tasks.registry.reached_twice`).
    """
    converted = to_task(task)
    existing = registry.find_registered(converted.id)
    if existing is not None and external_id_of(existing) == task.id:
        if existing.upstream == task and registry.reached_twice(converted.id):
            return  # ready() and the entry point both ran the same register_tasks()
        raise ValueError(f"Scheduled admin task already registered: {task.id}")
    registry.register(converted)


def get_all_admin_tasks() -> list[ScheduledAdminTaskDefinition]:
    """Every task: the built-ins first, then registered ones in registration order."""
    return [to_definition(task) for task in registry.get_tasks()]


def get_admin_tasks_for_backend(backend: Backend | str) -> list[ScheduledAdminTaskDefinition]:
    """The tasks that ``backend`` (a :class:`Backend` or its value) runs."""
    wanted = Backend(backend)
    return [d for d in get_all_admin_tasks() if d.supports_backend(wanted)]


def get_admin_task_by_id(task_id: str) -> ScheduledAdminTaskDefinition | None:
    """The task with this upstream id (or its job name), or ``None``."""
    task = registry.get_task(task_id_for(task_id)) if isinstance(task_id, str) else None
    return None if task is None else to_definition(task)


def get_enabled_admin_tasks() -> list[ScheduledAdminTaskDefinition]:
    return [d for d in get_all_admin_tasks() if d.enabled]


def reset_dynamic_tasks() -> None:
    """Forget every registered task (tests)."""
    registry.reset_registry_for_tests()
