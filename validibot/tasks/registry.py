"""The single source of truth for Validibot's scheduled maintenance tasks.

Every consumer (the Dagster code location, ``sync_schedules``, the HTTP trigger, the docs
tests) reads tasks through the accessors below, never through ``BUILTIN_TASKS``
directly: the static tuple misses tasks that downstream packages register.

This module deliberately imports nothing from Django or Dagster, so the Dagster code
location can read it without ``django.setup()`` (and so without touching a database).

Downstream packages add tasks with :func:`register`, either from their
``AppConfig.ready()`` or from a module named in the ``validibot.scheduled_tasks`` entry-point
group or the ``VALIDIBOT_TASK_MODULES`` environment variable. The last two are how a process
that never sets Django up (the Dagster code location) sees the same tasks; a module may be
reached both ways, so registering an identical definition twice is harmless.
"""

from __future__ import annotations

import importlib
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from importlib.metadata import entry_points
from itertools import islice
from warnings import warn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from validibot.tasks import dst
from validibot.tasks.outcomes import COUNT, DAY, HOUR, OutcomeCheck
from validibot.tasks.policies import OVERLAP_SKIP, policy_problems

ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
"""Ids become Dagster job names, which allow only ``[A-Za-z0-9_]``; we also require snake_case."""
CELERY_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

BACKEND_DAGSTER = "dagster"
BACKEND_GCP = "gcp"
BACKEND_AWS = "aws"
ALL_BACKENDS: frozenset[str] = frozenset({BACKEND_DAGSTER, BACKEND_GCP})
"""What a task has unless it says otherwise: a Dagster schedule and a Cloud Scheduler job."""
KNOWN_BACKENDS: frozenset[str] = ALL_BACKENDS | {BACKEND_AWS}
"""``aws`` is upstream's word for EventBridge, not yet implemented upstream or here: an
aws-only task has a job (the HTTP trigger can launch it) and no schedule."""

DEFAULT_QUEUE = "default"
DOCKER_QUEUE = "docker"
ENTRY_POINT_GROUP = "validibot.scheduled_tasks"
TASK_MODULES_ENV = "VALIDIBOT_TASK_MODULES"
TIMEZONE_ENV = "VALIDIBOT_SCHEDULE_TIMEZONE"


class RegistryError(ValueError):
    """A registry entry is invalid; the message always names the entry's id."""


class ClockChangeWarning(UserWarning):
    """A fixed-hour cron names a local time that a clock change removes or repeats."""


def _default_timezone() -> str:
    return os.environ.get(TIMEZONE_ENV, "").strip() or "UTC"


SOFT_LIMIT_ENV = "VALIDIBOT_TASK_SOFT_TIME_LIMIT_SECONDS"
HARD_LIMIT_ENV = "VALIDIBOT_TASK_HARD_TIME_LIMIT_SECONDS"


def _env_seconds(name: str, default: int) -> int:
    """The variable as whole seconds; a bad value gives the default here and is reported by
    :func:`environment_problems` (importing the registry must never fail on it)."""
    raw = os.environ.get(name, "").strip()
    try:
        return int(raw) if raw else default
    except ValueError:
        return default


DEFAULT_SOFT_LIMIT = 25 * 60
DEFAULT_HARD_LIMIT = 30 * 60


def _default_soft_limit() -> int:
    return _env_seconds(SOFT_LIMIT_ENV, DEFAULT_SOFT_LIMIT)


def _default_hard_limit() -> int:
    return _env_seconds(HARD_LIMIT_ENV, DEFAULT_HARD_LIMIT)


def environment_problems(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """What is wrong with the variables the entries' defaults come from, by variable.

    :func:`get_tasks` refuses to answer while any is wrong, naming the variable rather than
    the first entry that happens to use it.
    """
    environ = os.environ if environ is None else environ
    problems: dict[str, str] = {}
    limits: dict[str, int] = {}
    defaults = {SOFT_LIMIT_ENV: DEFAULT_SOFT_LIMIT, HARD_LIMIT_ENV: DEFAULT_HARD_LIMIT}
    for name, default in defaults.items():
        raw = environ.get(name, "").strip()
        try:
            limits[name] = int(raw) if raw else default
        except ValueError:
            limits[name] = 0
        if limits[name] < 1:
            problems[name] = (
                f"{name}={raw!r} is invalid: expected a whole number of seconds >= 1; "
                f"default {default}"
            )
    if not problems and limits[SOFT_LIMIT_ENV] > limits[HARD_LIMIT_ENV]:
        problems[SOFT_LIMIT_ENV] = (
            f"{SOFT_LIMIT_ENV}={limits[SOFT_LIMIT_ENV]} is invalid: must be <= "
            f"{HARD_LIMIT_ENV}={limits[HARD_LIMIT_ENV]}"
        )
    zone = environ.get(TIMEZONE_ENV, "").strip()
    if zone:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            problems[TIMEZONE_ENV] = (
                f"{TIMEZONE_ENV}={zone!r} is invalid: expected an IANA timezone such as "
                "Europe/Paris; default UTC"
            )
    return problems


@dataclass(frozen=True)
class MaintenanceTask:
    """One scheduled maintenance task.

    Attributes:
        id: snake_case identifier; it is also the Dagster job and op name, and the schedule is
            ``<id>_schedule``.
        name: human-readable name shown in the UI.
        command: the Django management command that does the work; empty for a task that
            names only a ``celery_task`` (upstream's shape), whose function then runs instead.
        cron: five-field cron expression, evaluated in ``timezone``.
        description: what the task does, for operators.
        args: default command-line arguments passed to ``command``.
        timezone: IANA timezone for ``cron`` (``VALIDIBOT_SCHEDULE_TIMEZONE``, else UTC).
        enabled: whether the schedule runs; a disabled task can still be launched by hand.
        backends: which schedulers trigger it (``dagster``, ``gcp``). Every task has a Dagster
            job whatever its backends (an HTTP trigger launches it); only tasks with ``dagster``
            get a Dagster schedule.
        max_retries: how many times a failed run of the command is retried.
        retry_delay_seconds: base delay of the exponential retry backoff.
        soft_time_limit_seconds: past this the run is reported as slow.
        hard_time_limit_seconds: past this the run is stopped as failed.
        queue: the Celery queue its op runs on in the production topology.
        count_descriptions: ``(count name, meaning)`` pairs for the counts the command's
            summary reports; shown with the per-task asset whose plots track them.
        outcome_checks: what "the data is clean" means for this task: each becomes a Dagster
            asset check on the task's asset (``validibot/tasks/outcomes.py``).
        overlap_policy: a tick while a run is in progress: ``skip`` (default), ``buffer_one``
            (one run waits behind it) or ``allow`` (runs overlap; no per-task lock).
        catchup_window_seconds: a tick older than this when evaluated (after downtime) is
            skipped; ``None`` catches up with one run.
        pause_after_failures: stop the schedule after this many consecutive failed runs;
            ``None`` (default) never pauses.
        privacy: the task deletes personal data: never paused, alerts with rising severity.
        celery_task: the registered name of the Celery task that does the same work
            (upstream's ``validibot.<id>``, see ``validibot.core.tasks.scheduled_tasks``). With
            no ``command`` the op runs that task's function in-process.
        upstream: the upstream-shaped definition this task was registered from, if any
            (``validibot.core.tasks.registry.ScheduledAdminTaskDefinition``); it is what
            upstream's accessors return for it.
        needs_webserver: the command talks to Dagster's webserver (``VALIDIBOT_DAGSTER_URL``),
            so the offline demo (``scripts/demo``, no webserver) leaves it out and says so.
        See :mod:`validibot.tasks.policies`.
    """

    id: str
    name: str
    command: str
    cron: str
    description: str = ""
    args: tuple[str, ...] = ()
    timezone: str = field(default_factory=_default_timezone)
    enabled: bool = True
    backends: frozenset[str] = ALL_BACKENDS
    max_retries: int = 3
    retry_delay_seconds: int = 30
    soft_time_limit_seconds: int = field(default_factory=_default_soft_limit)
    hard_time_limit_seconds: int = field(default_factory=_default_hard_limit)
    queue: str = DEFAULT_QUEUE
    count_descriptions: tuple[tuple[str, str], ...] = ()
    outcome_checks: tuple[OutcomeCheck, ...] = ()
    overlap_policy: str = OVERLAP_SKIP
    catchup_window_seconds: int | None = None
    pause_after_failures: int | None = None
    privacy: bool = False
    needs_webserver: bool = False
    celery_task: str = ""
    upstream: object = field(default=None, compare=False, repr=False)

    @property
    def api_path(self) -> str:
        """Path of the authenticated HTTP trigger for this task (its upstream endpoint, with
        the kebab id, when it was registered in upstream's shape; the trigger answers both)."""
        endpoint = getattr(self.upstream, "api_endpoint", "")
        return endpoint or f"/api/v1/scheduled/{self.id}/"

    @property
    def label(self) -> str:
        """The id its author wrote: the upstream id it was registered with, else the id."""
        return getattr(self.upstream, "id", "") or self.id

    @property
    def count_names(self) -> tuple[str, ...]:
        """The counts the command's summary reports, in order (from ``count_descriptions``)."""
        return tuple(name for name, _ in self.count_descriptions)

    @property
    def schedule_name(self) -> str:
        """Name of the Dagster schedule generated for this task."""
        return f"{self.id}_schedule"

    def validate(self) -> None:
        """Raise :class:`RegistryError` naming this entry if any field is unusable."""
        for problem in self.problems():
            raise RegistryError(f"scheduled task {self.label!r}: {problem}")

    def problems(self) -> list[str]:
        """What is wrong with this entry (empty when it is usable)."""
        return list(_problems(self))

    def warnings(self, cron: str | None = None) -> list[str]:
        """What is legal but likely unintended about this entry (never an error), each naming
        the entry: today, a fixed-hour cron whose time a clock change of its zone removes or
        repeats (see :func:`validibot.tasks.dst.lint`). ``cron`` checks another cron (an
        incident override's) in this entry's timezone. Only Dagster-scheduled entries are
        checked: the rule is Dagster's."""
        if BACKEND_DAGSTER not in self.backends:
            return []
        return [
            f"scheduled task {self.id!r}: {w}" for w in dst.lint(cron or self.cron, self.timezone)
        ]

    def next_fire_times(self, after: datetime, count: int = 2) -> list[datetime]:
        """The next ``count`` fire times after ``after``, in the task's timezone."""
        return list(islice(iter_fire_times(self.cron, self.timezone, after), count))


def iter_fire_times(cron: str, timezone: str, after: datetime) -> Iterator[datetime]:
    """Fire times of ``cron`` in ``timezone`` after ``after``, as Dagster's scheduler runs them.

    Across clock changes this follows Dagster's rule exactly (see :mod:`validibot.tasks.dst`):
    a fixed-hour cron's time that does not exist is shifted and one that occurs twice runs
    once; an every-hour cron skips the first and runs the second twice. The preview, the
    freshness windows and the status view all read fire times from here.
    """
    return dst.iter_fire_times(cron, timezone, after)


def _problems(task: MaintenanceTask) -> Iterable[str]:
    if not isinstance(task.id, str) or not ID_PATTERN.match(task.id):
        yield "id must match ^[a-z][a-z0-9_]*$ (it becomes a Dagster job name)"
    if not task.name:
        yield "name is required"
    if not task.command and not task.celery_task:
        yield "a command or a celery_task is required"
    if task.celery_task and not (
        isinstance(task.celery_task, str) and CELERY_NAME_PATTERN.match(task.celery_task)
    ):
        yield (
            f"celery_task {task.celery_task!r} is not a Celery task name "
            "(dotted identifiers, e.g. 'validibot.purge_expired_submissions')"
        )
    if not isinstance(task.cron, str) or len(task.cron.split()) != 5:
        yield f"cron {task.cron!r} must have five fields"
    elif not croniter.is_valid(task.cron):
        yield f"cron {task.cron!r} does not parse"
    try:
        ZoneInfo(task.timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        yield f"timezone {task.timezone!r} is not a known IANA timezone"
    if not set(task.backends) <= KNOWN_BACKENDS or not task.backends:
        yield f"backends {sorted(task.backends)} must be a non-empty subset of {sorted(KNOWN_BACKENDS)}"  # noqa: E501
    if not isinstance(task.args, tuple) or not all(isinstance(a, str) for a in task.args):
        yield "args must be a tuple of strings"
    if not isinstance(task.count_descriptions, tuple) or not all(
        isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(x, str) for x in pair)
        for pair in task.count_descriptions
    ):
        yield "count_descriptions must be a tuple of (count name, meaning) string pairs"
    yield from _outcome_check_problems(task.outcome_checks)
    if task.max_retries < 0 or task.retry_delay_seconds < 0:
        yield "max_retries and retry_delay_seconds must be >= 0"
    if not 0 < task.soft_time_limit_seconds <= task.hard_time_limit_seconds:
        yield "time limits must satisfy 0 < soft <= hard"
    if not task.queue or not re.match(r"^[A-Za-z0-9_.-]+$", task.queue):
        yield f"queue {task.queue!r} is not a valid queue name"
    yield from policy_problems(task)


def _outcome_check_problems(checks: object) -> Iterable[str]:
    if not isinstance(checks, tuple) or not all(isinstance(c, OutcomeCheck) for c in checks):
        yield "outcome_checks must be a tuple of OutcomeCheck"
        return
    names = [check.name for check in checks]
    if len(names) != len(set(names)):
        yield f"outcome check names {names} must be unique"
    for check in checks:
        yield from check.problems()


PURGE_COUNTS: tuple[tuple[str, str], ...] = (
    ("purged", "rows whose content and stored files were removed (rows stay for audit)"),
    ("failed", "stored files that could not be deleted; each is queued as a purge retry"),
    ("skipped_busy", "due rows left alone because a validation run still uses them"),
    ("batches", "batches processed in this run"),
)
"""What both purges count (submissions and outputs share one purge command)."""

_BUILTIN_TASKS: tuple[MaintenanceTask, ...] = (
    MaintenanceTask(
        id="purge_expired_submissions",
        name="Purge expired submissions",
        command="purge_expired_submissions",
        cron="0 * * * *",
        description="Remove the content and stored files of submissions past their retention; "
        "the row stays for audit.",
        count_descriptions=PURGE_COUNTS,
        outcome_checks=(
            OutcomeCheck(
                name="expired_content_kept",
                query="validibot.submissions.outcomes.expired_content_kept",
                description="Submissions past expiry (plus two hourly runs) still holding "
                "content or a stored file, not yet handed to the purge retries.",
                grace_seconds=2 * HOUR,
                error_above=24,
            ),
        ),
        # Deletes personal data (storage limitation): never paused by the failure policy.
        privacy=True,
    ),
    MaintenanceTask(
        id="purge_expired_outputs",
        name="Purge expired outputs",
        command="purge_expired_outputs",
        # Every 5 minutes, as upstream since fc6b7ef1: "do not store" outputs go one minute
        # after their run ends, so an hourly purge would keep them up to an hour.
        cron="*/5 * * * *",
        description="Remove the content and stored files of validation outputs past their expiry.",
        count_descriptions=PURGE_COUNTS,
        outcome_checks=(
            OutcomeCheck(
                name="expired_content_kept",
                query="validibot.validations.outcomes.expired_outputs_kept",
                description="Validation outputs past expiry (plus 30 minutes) still holding "
                "content or a stored file, not yet handed to the purge retries.",
                grace_seconds=HOUR // 2,
                error_above=6,
            ),
        ),
        # Deletes personal data (storage limitation): never paused by the failure policy.
        privacy=True,
    ),
    MaintenanceTask(
        id="process_purge_retries",
        name="Process purge retries",
        command="process_purge_retries",
        cron="*/5 * * * *",
        description="Retry purges whose storage deletion failed, with capped exponential backoff.",
        count_descriptions=(
            ("succeeded", "queued retries whose deletion now worked"),
            ("already_purged", "retries whose row had been purged meanwhile (retry dropped)"),
            ("deferred", "retries whose row is busy again, pushed back without an attempt"),
            ("failed", "retries that failed again in this run (capped backoff)"),
            ("over_threshold", "retries past the alert threshold: a rising line needs a human"),
        ),
        outcome_checks=(
            OutcomeCheck(
                name="retries_over_threshold",
                query="validibot.retention.outcomes.retries_over_threshold",
                description="Purge retries that failed VALIDIBOT_PURGE_RETRY_ALERT_ATTEMPTS "
                "times or more (the storage keeps refusing a deletion).",
                measure=COUNT,
                error_above=10,
            ),
            OutcomeCheck(
                name="retries_overdue",
                query="validibot.retention.outcomes.retries_overdue",
                description="Purge retries whose next attempt is more than 30 minutes overdue "
                "(nothing is processing the queue).",
                grace_seconds=HOUR // 2,
                error_above=6,
            ),
        ),
        # Upstream: privacy-critical deletion is never abandoned.
        privacy=True,
    ),
    MaintenanceTask(
        id="cleanup_stuck_runs",
        name="Clean up stuck runs",
        command="cleanup_stuck_runs",
        cron="*/10 * * * *",
        description="Re-dispatch durable continuations interrupted after their callback "
        "arrived, then mark validation runs that hung in RUNNING past the timeout as TIMED_OUT.",
        # The command's own default is VALIDATOR_TIMEOUT_SECONDS (60 min); the schedule uses
        # 30 minutes, as upstream's Celery wrapper and HTTP view do. A run's own timeout_at
        # overrides either.
        args=("--timeout-minutes=30",),
        count_descriptions=(
            ("timed_out", "runs stuck in RUNNING past the timeout, now TIMED_OUT"),
            (
                "continuations_eligible",
                "interrupted continuations found stale (dispatched "
                "plus failed; a dry run counts only these)",
            ),
            (
                "continuations_examined",
                "open durable continuations examined (at most --batch-size)",
            ),
            ("continuations_dispatched", "stale continuations dispatched again"),
            (
                "continuations_already_dispatched",
                "continuations dispatched recently, waiting for a worker (left alone)",
            ),
            (
                "continuations_busy",
                "continuations being processed within their deadline (left alone)",
            ),
            ("continuations_not_required", "continuations whose run had already ended (closed)"),
            (
                "continuations_failed",
                "continuations given up after 3 dispatches (their run "
                "is left to the timeout sweep)",
            ),
        ),
        outcome_checks=(
            OutcomeCheck(
                name="stuck_runs",
                query="validibot.validations.outcomes.stuck_runs",
                description="Non-terminal validation runs past their timeout (their own "
                "timeout_at, else VALIDATOR_TIMEOUT_SECONDS without progress) plus 20 minutes.",
                grace_seconds=20 * 60,
                error_above=2,
            ),
        ),
    ),
    MaintenanceTask(
        id="verify_validator_deployments",
        name="Verify validator deployments",
        command="verify_validator_deployments",
        cron="17 * * * *",
        description="Check that every configured validator deployment answers (GCP only).",
        count_descriptions=(
            ("checked", "validator deployments probed"),
            ("healthy", "deployments that answered with a success status"),
            ("down", "deployments that failed to answer or answered an error (the run fails)"),
        ),
        # Upstream runs it only on GCP (Cloud Run validators): no Dagster schedule, but the
        # HTTP trigger can start it.
        backends=frozenset({BACKEND_GCP}),
    ),
    MaintenanceTask(
        id="cleanup_orphaned_containers",
        name="Clean up orphaned containers",
        command="cleanup_orphaned_containers",
        cron="*/10 * * * *",
        description="Remove validator containers that outlived their runs (Docker Compose only).",
        count_descriptions=(
            ("examined", "managed validator containers found"),
            ("removed", "orphaned containers removed"),
            ("kept", "containers still in use or within the grace period"),
            ("errors", "containers that could not be removed (the run fails)"),
            ("engine_unreachable", "1 when no Docker engine answered (nothing examined)"),
        ),
        backends=frozenset({BACKEND_DAGSTER}),
        queue=DOCKER_QUEUE,
    ),
    MaintenanceTask(
        id="cleanup_idempotency_keys",
        name="Clean up idempotency keys",
        command="cleanup_idempotency_keys",
        cron="0 3 * * *",
        description="Delete idempotency keys past their 24-hour lifetime.",
        count_descriptions=(("deleted", "expired rows deleted"),),
        outcome_checks=(
            OutcomeCheck(
                name="expired_rows_kept",
                query="validibot.operations.outcomes.expired_idempotency_keys",
                description="Idempotency keys past their expiry plus 25 hours (a daily run).",
                grace_seconds=DAY + HOUR,
                error_above=48,
            ),
        ),
    ),
    MaintenanceTask(
        id="cleanup_callback_receipts",
        name="Clean up callback receipts",
        command="cleanup_callback_receipts",
        cron="0 4 * * 0",
        description="Delete validator callback receipts older than the retention window (30 days).",
        count_descriptions=(("deleted", "expired rows deleted"),),
        outcome_checks=(
            OutcomeCheck(
                name="expired_rows_kept",
                query="validibot.validations.outcomes.expired_callback_receipts",
                description="Callback receipts older than "
                "VALIDIBOT_CALLBACK_RECEIPT_RETENTION_DAYS plus 8 days (a weekly run).",
                grace_seconds=8 * DAY,
                error_above=7 * 24,
            ),
        ),
    ),
    MaintenanceTask(
        id="clear_sessions",
        name="Clear expired sessions",
        command="clear_sessions",
        cron="0 2 * * *",
        description="Delete expired Django sessions.",
        count_descriptions=(("deleted", "expired rows deleted"),),
        outcome_checks=(
            OutcomeCheck(
                name="expired_rows_kept",
                query="validibot.core.outcomes.expired_sessions",
                description="Database sessions past their expiry plus 25 hours (a daily run).",
                grace_seconds=DAY + HOUR,
                error_above=48,
            ),
        ),
        # Sessions carry who is logged in (a user id, often an IP): personal data.
        privacy=True,
    ),
    MaintenanceTask(
        id="send_periodic_emails",
        name="Send periodic emails",
        command="send_periodic_emails",
        cron="0 */6 * * *",
        description="Run every registered periodic email handler (none in the community edition).",
        count_descriptions=(
            ("handlers", "registered periodic-email handlers run"),
            ("sent", "emails sent"),
            ("handler_errors", "handlers that raised (the run fails)"),
        ),
        # A digest sent hours late is noise: after downtime, a tick older than an hour is
        # skipped (the next one sends as usual).
        catchup_window_seconds=3600,
    ),
    MaintenanceTask(
        id="enforce_audit_retention",
        name="Enforce audit-log retention",
        command="enforce_audit_retention",
        cron="30 2 * * *",
        description="Archive audit-log entries past the hot-retention window (90 days), then "
        "delete them.",
        count_descriptions=(
            ("archived", "entries handed to the archive backend and verified there"),
            ("deleted", "entries deleted after their archive was verified"),
            ("actors_swept", "actors left with no entries, deleted (erased actors are kept)"),
            ("chunks", "chunks archived and deleted, each in its own transaction"),
            ("frozen", "1 when AUDIT_RETENTION_ENABLED=false froze the run (nothing changed)"),
        ),
        outcome_checks=(
            OutcomeCheck(
                name="entries_past_retention",
                query="validibot.audit.outcomes.entries_past_retention",
                description="Audit-log entries older than AUDIT_HOT_RETENTION_DAYS plus 25 hours "
                "(a daily run); a frozen retention (AUDIT_RETENTION_ENABLED=false) shows here.",
                grace_seconds=DAY + HOUR,
                error_above=48,
            ),
        ),
        # Audit entries name their actors (identifier) and hold payloads about them.
        privacy=True,
    ),
    # Upstream has the command (dea2d64b) but schedules it nowhere; here it runs daily.
    MaintenanceTask(
        id="purge_stale_oidc_clients",
        name="Purge stale OIDC clients",
        command="purge_stale_oidc_clients",
        cron="15 4 * * *",
        description="Delete dynamically registered OIDC clients inactive past the retention "
        "window (30 days) that hold no live token.",
        count_descriptions=(
            ("deleted", "inactive DCR clients deleted"),
            ("tokens_deleted", "their revoked or expired tokens, deleted with them"),
            ("kept_live_token", "inactive DCR clients kept because a token is still live"),
        ),
        outcome_checks=(
            OutcomeCheck(
                name="stale_clients_kept",
                query="validibot.idp.outcomes.stale_dcr_clients_kept",
                description="Dynamically registered clients inactive for longer than "
                "IDP_OIDC_DCR_INACTIVE_CLIENT_RETENTION_DAYS plus 25 hours (a daily run) "
                "with no live token.",
                grace_seconds=DAY + HOUR,
                error_above=48,
            ),
        ),
    ),
    # Ops-side: not in upstream's registry (Celery Beat has no run history to prune).
    MaintenanceTask(
        id="prune_dagster_history",
        name="Prune Dagster run history",
        command="prune_dagster_history",
        cron="45 3 * * *",
        description="Roll each task's runs up into a daily history table, then delete finished "
        "runs older than VALIDIBOT_DAGSTER_RUN_RETENTION_DAYS (90) with their event logs.",
        count_descriptions=(
            ("deleted", "runs deleted with their event logs"),
            ("events", "event-log records deleted with those runs"),
            ("rolled_up", "runs added to the daily history (a run is never added twice)"),
            ("kept_latest", "old runs kept because they are their task's latest"),
            ("batches", "batches processed in this run"),
        ),
        backends=frozenset({BACKEND_DAGSTER}),
        needs_webserver=True,  # it prunes through Dagster's GraphQL API
    ),
)

BUILTIN_TASKS: tuple[MaintenanceTask, ...] = tuple(
    replace(task, celery_task=f"validibot.{task.id}") for task in _BUILTIN_TASKS
)
"""The built-ins, each naming its Celery task as upstream does (``validibot.<id>``, defined in
``validibot.core.tasks.scheduled_tasks``); their op runs the command, never the Celery task."""


def task_id_for(external_id: str) -> str:
    """The one rule from an upstream id to a task id (and Dagster job name): hyphens become
    underscores, so ``purge-expired-submissions`` is ``purge_expired_submissions``."""
    return external_id.replace("-", "_")


def external_id_of(task: MaintenanceTask) -> str:
    """The id upstream's accessors show: the one it was registered with, else the kebab form."""
    return task.label if task.upstream is not None else task.id.replace("_", "-")


_lock = threading.RLock()
_registered: dict[str, MaintenanceTask] = {}
_plugins_loaded = False
_loading_plugins = False
_plugin_ids: set[str] = set()
"""Ids the plugin loader registered, until ``AppConfig.ready()`` registers them again."""
_warned: set[str] = set()


def register(task: MaintenanceTask) -> None:
    """Add a downstream task to the registry.

    Raises:
        RegistryError: the definition is invalid (the message names it).
        ValueError: another task already uses this id. Registering an identical definition
            again is a no-op, because a module can be reached from both ``AppConfig.ready()``
            and the entry-point group.
    """
    task.validate()
    with _lock:
        existing = _registered.get(task.id) or _builtin_by_id().get(task.id)
        if existing is not None and existing.label != task.label:
            raise RegistryError(
                f"scheduled task ids {existing.label!r} and {task.label!r} "
                f"both become the job name {task.id!r}; rename one"
            )
        if existing == task:
            return
        if existing is not None:
            raise ValueError(f"scheduled task id {task.id!r} is already registered")
        _registered[task.id] = task
        if _loading_plugins:
            _plugin_ids.add(task.id)


def find_registered(task_id: str) -> MaintenanceTask | None:
    """The built-in or registered task with this id, without loading plugin modules."""
    with _lock:
        return _registered.get(task_id) or _builtin_by_id().get(task_id)


def _builtin_by_id() -> dict[str, MaintenanceTask]:
    return {task.id: task for task in BUILTIN_TASKS}


def _load_plugins() -> None:
    """Load the plugins that register downstream tasks (entry points, then the env var).

    A plugin is a module (registering at import) or ``module:function`` (called once loaded),
    so one ``register_tasks()`` can serve both ``AppConfig.ready()`` and the entry point.
    """
    global _plugins_loaded, _loading_plugins
    with _lock:
        if _plugins_loaded:
            return
        _plugins_loaded = True
        specs = [ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)]
        specs += [n.strip() for n in os.environ.get(TASK_MODULES_ENV, "").split(",") if n.strip()]
        _loading_plugins = True
        try:
            for spec in specs:
                _load_plugin(spec)
        finally:
            _loading_plugins = False


def _load_plugin(spec: str) -> None:
    module_name, _, attribute = spec.partition(":")
    where = f"(from {ENTRY_POINT_GROUP} or {TASK_MODULES_ENV})"
    try:
        module = importlib.import_module(module_name.strip())
    except ImportError as exc:
        raise RegistryError(f"cannot import scheduled-task module {spec!r} {where}: {exc}") from exc
    if attribute:
        function = getattr(module, attribute.strip(), None)
        if not callable(function):
            raise RegistryError(
                f"scheduled-task plugin {spec!r} {where}: no function {attribute!r}"
            )
        function()


def reached_twice(task_id: str) -> bool:
    """Whether an identical registration of ``task_id`` is the same plugin reached a second
    way (once by the plugin loader, once by ``AppConfig.ready()``), which is harmless.

    True while the loader runs, or once for an id the loader registered; a third identical
    registration (or two outside the loader) is a real duplicate.
    """
    with _lock:
        if _loading_plugins:
            return True
        if task_id in _plugin_ids:
            _plugin_ids.discard(task_id)
            return True
        return False


def get_tasks() -> tuple[MaintenanceTask, ...]:
    """Every task, built-in first then downstream in registration order, each validated."""
    problems = environment_problems()
    if problems:
        raise RegistryError("; ".join(problems.values()))
    _load_plugins()
    with _lock:
        tasks = BUILTIN_TASKS + tuple(_registered.values())
    seen: set[str] = set()
    for task in tasks:
        task.validate()
        for message in set(task.warnings()) - _warned:  # once per process
            _warned.add(message)
            warn(message, ClockChangeWarning, stacklevel=2)
        if task.id in seen:
            raise RegistryError(f"scheduled task {task.id!r}: duplicate id")
        seen.add(task.id)
    return tasks


def get_enabled_tasks() -> tuple[MaintenanceTask, ...]:
    """The tasks whose schedules should run."""
    return tuple(task for task in get_tasks() if task.enabled)


def get_task(task_id: str) -> MaintenanceTask | None:
    """The task with this id, or ``None``."""
    return next((task for task in get_tasks() if task.id == task_id), None)


def get_tasks_for_backend(backend: str) -> tuple[MaintenanceTask, ...]:
    """The tasks that the given scheduler backend (``dagster``, ``gcp``) triggers."""
    if backend not in ALL_BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {sorted(ALL_BACKENDS)}")
    return tuple(task for task in get_tasks() if backend in task.backends)


def reset_registry_for_tests() -> None:
    """Forget downstream registrations (and reload plugins on next read). Tests only."""
    global _plugins_loaded
    with _lock:
        _registered.clear()
        _plugin_ids.clear()
        _plugins_loaded = False
