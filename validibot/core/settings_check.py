"""Every ``VALIDIBOT_*`` variable declared once: its type, accepted range, default and users.

The settings module reads the environment through :func:`check_environment` once, at start-up.
A bad value never stops the process from loading: it becomes an :class:`InvalidSetting` and
its message (naming the variable and the accepted range) is kept in
``settings.VALIDIBOT_SETTINGS_ERRORS``. What needs the value refuses to start instead, with
that message: a maintenance command (:func:`task_setting_errors`, called by the command base),
the HTTP trigger (:func:`setting_errors`), ``doctor`` (which lists every problem). So one bad
variable fails the runs of the tasks that read it, and ``manage.py help``, the other tasks and
the web app keep working.

Pure data and pydantic: no Django import at module level, so ``config/settings`` can use it.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, TypeAdapter, ValidationError

from validibot.tasks import health, registry

PURGES = ("purge_expired_submissions", "purge_expired_outputs")
RETRIES = ("process_purge_retries",)
TRIGGER = "the HTTP trigger"
DAGSTER_CLIENT = "the HTTP trigger, sync_schedules, doctor and scheduled_task_status"
CODE_LOCATION = "the Dagster code location"


class SettingsError(ValueError):
    """One or more settings are invalid; the message names each variable."""


# -- value types -----------------------------------------------------------------------------
def _url(schemes: frozenset[str]) -> Callable[[str], str]:
    def check(value: str) -> str:
        value = value.strip()
        parts = urllib.parse.urlsplit(value)
        if parts.scheme not in schemes or not (parts.netloc or parts.path):
            raise ValueError("not a URL")
        return value

    return check


def _timezone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    value = value.strip()
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):  # a KeyError subclass: pydantic wants ValueError
        raise ValueError("unknown timezone") from None
    return value


def _token(value: str) -> str:
    value = value.strip()
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise ValueError("whitespace or control characters")
    return value


TOKEN_MAP_ITEM = re.compile(r"^[a-z][a-z0-9_]*$")


def parse_token_map(value: str) -> dict[str, str]:
    """``"task_id=token,other_id=token2"`` -> ``{task_id: token}``; spaces around ids,
    tokens and separators are dropped. The error never repeats a token (they are secrets)."""
    tokens: dict[str, str] = {}
    for number, item in enumerate(value.split(","), start=1):
        if not item.strip():
            continue
        task_id, equals, token = (part.strip() for part in item.partition("="))
        if not equals:
            raise ValueError(f"entry {number} has no '='")
        if not TOKEN_MAP_ITEM.match(task_id):
            raise ValueError(f"entry {number}: the task id must be snake_case")
        if not token or any(ch.isspace() or not ch.isprintable() for ch in token):
            raise ValueError(f"entry {number} ({task_id}): empty token or whitespace in it")
        if task_id in tokens:
            raise ValueError(f"entry {number}: task {task_id} appears twice")
        tokens[task_id] = token
    return tokens


def parse_url_map(value: str) -> dict[str, str]:
    """``"name=https://host/health,other=..."`` -> ``{name: url}`` (validator deployments)."""
    urls: dict[str, str] = {}
    for number, item in enumerate(value.split(","), start=1):
        if not item.strip():
            continue
        name, equals, url = (part.strip() for part in item.partition("="))
        if not equals or not name:
            raise ValueError(f"entry {number} is not name=url")
        urls[name] = _url(HTTP)(url)
    return urls


def _emails(value: str) -> str:
    for address in (a.strip() for a in value.split(",")):
        if address and not re.match(r"^[^@\s]+@[^@\s]+$", address):
            raise ValueError(f"{address!r} is not an email address")
    return value


def _modules(value: str) -> str:
    for name in (n.strip() for n in value.split(",")):
        if name and not re.match(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$", name):
            raise ValueError(f"{name!r} is not a dotted module name")
    return value


def _grace(value: str) -> float:
    return health.grace_intervals_from_env({health.GRACE_ENV: value})


def whole(minimum: int) -> Any:
    return Annotated[int, Field(ge=minimum)]


# -- the table -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    """One environment variable.

    Attributes:
        name: the variable (``VALIDIBOT_...``).
        type: a pydantic-validatable type; the raw string is validated against it.
        default: the value when the variable is unset or empty.
        accepted: the accepted values, in words, for the error message.
        tasks: the registry tasks whose runs refuse to start while the variable is invalid.
        used_by: the other consumers, in words (docs and ``doctor``).
    """

    name: str
    type: Any
    default: Any
    accepted: str
    tasks: tuple[str, ...] = ()
    used_by: str = ""
    adapter: TypeAdapter = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "adapter", TypeAdapter(self.type))

    def parse(self, raw: str | None) -> Any:
        """The value of ``raw`` (``None`` or blank: the default); ``ValueError`` if invalid."""
        if raw is None or not raw.strip():
            return self.default
        try:
            return self.adapter.validate_python(raw.strip())
        except ValidationError as exc:
            raise ValueError(self.message(raw, exc)) from None

    def message(self, raw: str, exc: ValidationError | None = None) -> str:
        shown = "<hidden>" if "TOKEN" in self.name else repr(raw)
        detail = ""
        if exc is not None:
            error = exc.errors()[0]
            ctx = error.get("ctx") or {}
            detail = f" ({ctx['error']})" if "error" in ctx else ""
        default = "" if self.default in ("", None) else f"; default {self.default}"
        return f"{self.name}={shown} is invalid{detail}: expected {self.accepted}{default}"


HTTP = frozenset({"http", "https"})
DOCKER = frozenset({"unix", "tcp", "http", "https", "ssh", "npipe"})
ALL_TASKS = "every task's command"

SETTINGS: tuple[Setting, ...] = (
    # Maintenance commands.
    Setting("VALIDIBOT_PURGE_BATCH_SIZE", whole(1), 100, "a whole number >= 1",
            (*PURGES, "cleanup_stuck_runs")),
    Setting("VALIDIBOT_PURGE_MAX_BATCHES", whole(0), 10,
            "a whole number >= 0 (0 = until nothing is left)", PURGES),
    Setting("VALIDIBOT_PURGE_RETRY_BATCH_SIZE", whole(1), 50, "a whole number >= 1", RETRIES),
    Setting("VALIDIBOT_PURGE_RETRY_ALERT_ATTEMPTS", whole(1), 5, "a whole number >= 1", RETRIES),
    Setting("VALIDIBOT_PURGE_RETRY_BASE_SECONDS", whole(1), 300,
            "a whole number of seconds >= 1", (*PURGES, *RETRIES)),
    Setting("VALIDIBOT_PURGE_RETRY_MAX_SECONDS", whole(1), 3600,
            "a whole number of seconds >= 1 and >= VALIDIBOT_PURGE_RETRY_BASE_SECONDS",
            (*PURGES, *RETRIES)),
    Setting("VALIDATOR_TIMEOUT_SECONDS", whole(60), 3600,
            "a whole number of seconds >= 60", ("cleanup_stuck_runs",)),
    # The continuation repair of cleanup_stuck_runs (validibot/validations/continuations.py).
    Setting("VALIDATION_CALLBACK_PROCESSING_STALE_SECONDS", whole(1), 600,
            "a whole number of seconds >= 1", ("cleanup_stuck_runs",)),
    Setting("VALIDATION_CONTINUATION_DISPATCH_STALE_SECONDS", whole(1), 300,
            "a whole number of seconds >= 1", ("cleanup_stuck_runs",)),
    Setting("VALIDATION_CONTINUATION_EXECUTION_STALE_SECONDS", whole(1), 2100,
            "a whole number of seconds >= 1 and > "
            "VALIDATION_CONTINUATION_DISPATCH_STALE_SECONDS", ("cleanup_stuck_runs",)),
    Setting("VALIDIBOT_VALIDATOR_DEPLOYMENTS", Annotated[str, AfterValidator(parse_url_map)], {},
            "comma-separated name=url pairs, e.g. fmi=https://fmi.example.org/health",
            ("verify_validator_deployments",)),
    Setting("VALIDIBOT_VALIDATOR_CHECK_TIMEOUT_SECONDS", Annotated[float, Field(gt=0)], 10.0,
            "a number of seconds > 0", ("verify_validator_deployments",)),
    Setting("VALIDIBOT_IDEMPOTENCY_KEY_TTL_HOURS", whole(1), 24, "a whole number of hours >= 1",
            used_by=TRIGGER),
    Setting("VALIDIBOT_CALLBACK_RECEIPT_RETENTION_DAYS", whole(1), 30,
            "a whole number of days >= 1", ("cleanup_callback_receipts",)),
    Setting("VALIDIBOT_CLEANUP_BATCH_SIZE", whole(1), 1000, "a whole number >= 1",
            ("cleanup_idempotency_keys", "cleanup_callback_receipts", "clear_sessions",
             "send_periodic_emails", "cleanup_orphaned_containers", "purge_stale_oidc_clients")),
    Setting("IDP_OIDC_DCR_INACTIVE_CLIENT_RETENTION_DAYS", whole(1), 30,
            "a whole number of days >= 1", ("purge_stale_oidc_clients",)),
    Setting("VALIDIBOT_DAGSTER_RUN_RETENTION_DAYS", whole(1), 90,
            "a whole number of days >= 1", ("prune_dagster_history",)),
    Setting("VALIDIBOT_CONTAINER_GRACE_SECONDS", whole(0), 300, "a whole number of seconds >= 0",
            ("cleanup_orphaned_containers",)),
    Setting("VALIDIBOT_DOCKER_URL", Annotated[str, AfterValidator(_url(DOCKER))], "",
            "a Docker engine URL (unix://, tcp://, http(s)://, ssh://) or empty",
            ("cleanup_orphaned_containers",)),
    Setting("VALIDIBOT_CONTAINERS_REQUIRE_ENGINE", bool, False, "true or false",
            ("cleanup_orphaned_containers",)),
    Setting("VALIDIBOT_MEDIA_ROOT", str, "", "a directory path", used_by="file storage"),
    Setting("VALIDIBOT_LOCK_DIR", str, "", "a directory path, or empty (beside the database)",
            used_by="the per-task locks on SQLite"),
    # Operator surfaces.
    Setting("VALIDIBOT_DAGSTER_URL", Annotated[str, AfterValidator(_url(HTTP))],
            "http://127.0.0.1:3000", "an http:// or https:// URL", ("prune_dagster_history",),
            used_by=DAGSTER_CLIENT),
    Setting("VALIDIBOT_DAGSTER_UI_URL", Annotated[str, AfterValidator(_url(HTTP))], "",
            "an http:// or https:// URL, or empty (= VALIDIBOT_DAGSTER_URL)",
            used_by=f"{TRIGGER} and alert links"),
    Setting("VALIDIBOT_TRIGGER_TOKEN", Annotated[str, AfterValidator(_token)], "",
            "a token without whitespace or control characters, or empty", used_by=TRIGGER),
    Setting("VALIDIBOT_TRIGGER_TASK_TOKENS", Annotated[str, AfterValidator(parse_token_map)],
            {}, "comma-separated task_id=token pairs, e.g. clear_sessions=s3cret,other=t0ken",
            used_by=TRIGGER),
    Setting("VALIDIBOT_TRIGGER_BASE_URL", Annotated[str, AfterValidator(_url(HTTP))], "",
            "an http:// or https:// URL, or empty", used_by="sync_schedules --backend=gcp"),
    # The registry and the Dagster side (read from the environment by Django-free code).
    Setting(registry.TIMEZONE_ENV, Annotated[str, AfterValidator(_timezone)], "UTC",
            "an IANA timezone such as Europe/Paris", used_by=f"{CODE_LOCATION} and {ALL_TASKS}"),
    Setting(registry.SOFT_LIMIT_ENV, whole(1), 1500,
            f"a whole number of seconds >= 1 and <= {registry.HARD_LIMIT_ENV}",
            used_by=f"{CODE_LOCATION} and {ALL_TASKS}"),
    Setting(registry.HARD_LIMIT_ENV, whole(1), 1800, "a whole number of seconds >= 1",
            used_by=f"{CODE_LOCATION} and {ALL_TASKS}"),
    Setting(registry.TASK_MODULES_ENV, Annotated[str, AfterValidator(_modules)], "",
            "comma-separated dotted module names", used_by=f"{CODE_LOCATION} and {ALL_TASKS}"),
    Setting(health.GRACE_ENV, Annotated[str, AfterValidator(_grace)], 2.0,
            "a positive number such as 2", used_by="the freshness policies"),
    Setting("VALIDIBOT_ALERT_EMAILS", Annotated[str, AfterValidator(_emails)], "",
            "comma-separated email addresses", used_by="alerts"),
    Setting("VALIDIBOT_ALERT_WEBHOOK_URL", Annotated[str, AfterValidator(_url(HTTP))], "",
            "an http:// or https:// URL, or empty", used_by="alerts"),
    Setting("VALIDIBOT_ALERT_WEBHOOK_TIMEOUT_SECONDS", Annotated[float, Field(gt=0)], 5.0,
            "a number of seconds > 0", used_by="alerts"),
    Setting("VALIDIBOT_EXECUTOR", Literal["celery", "in_process", "multiprocess"], "",
            "celery, in_process or multiprocess, or empty", used_by=CODE_LOCATION),
)  # fmt: skip
"""The table. ``VALIDIBOT_SCHEDULE_OVERRIDES`` is checked by its loader (a file, not a value)."""

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def _cross_checks(values: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    """Rules between two variables: (the variable to blame, the message)."""
    base, cap = (
        values.get("VALIDIBOT_PURGE_RETRY_BASE_SECONDS"),
        values.get("VALIDIBOT_PURGE_RETRY_MAX_SECONDS"),
    )
    if isinstance(base, int) and isinstance(cap, int) and cap < base:
        name = "VALIDIBOT_PURGE_RETRY_MAX_SECONDS"
        yield name, f"{name}={cap} is invalid: must be >= VALIDIBOT_PURGE_RETRY_BASE_SECONDS={base}"
    dispatch, execution = (
        values.get("VALIDATION_CONTINUATION_DISPATCH_STALE_SECONDS"),
        values.get("VALIDATION_CONTINUATION_EXECUTION_STALE_SECONDS"),
    )
    if isinstance(dispatch, int) and isinstance(execution, int) and execution <= dispatch:
        # A worker's execution outlives its dispatch: an execution deadline at or before the
        # dispatch one would re-dispatch continuations that are running fine.
        name = "VALIDATION_CONTINUATION_EXECUTION_STALE_SECONDS"
        yield (
            name,
            (
                f"{name}={execution} is invalid: must be greater than "
                f"VALIDATION_CONTINUATION_DISPATCH_STALE_SECONDS={dispatch}"
            ),
        )


# -- reading ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class InvalidSetting:
    """Stands in for a setting whose variable is invalid; any use raises its message."""

    name: str
    message: str

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):  # copy, pickle and templates probe these: not a use
            raise AttributeError(attribute)
        raise SettingsError(self.message)

    def __int__(self) -> int:
        raise SettingsError(self.message)

    __float__ = __index__ = __int__

    def __iter__(self):
        raise SettingsError(self.message)

    def __str__(self) -> str:
        return f"<invalid {self.name}>"


@dataclass(frozen=True)
class CheckedSettings:
    """The result of one check: a value (or :class:`InvalidSetting`) and errors by name."""

    values: dict[str, Any]
    errors: dict[str, str]

    def env(self, name: str) -> Any:
        """The value of ``name``, or an :class:`InvalidSetting` carrying its message."""
        if name in self.errors:
            return InvalidSetting(name, self.errors[name])
        return self.values[name]


def check_environment(environ: Mapping[str, str] | None = None) -> CheckedSettings:
    """Parse and check every variable of :data:`SETTINGS`; never raises."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for setting in SETTINGS:
        try:
            values[setting.name] = setting.parse(environ.get(setting.name))
        except ValueError as exc:
            errors[setting.name] = str(exc)
    for name, message in _cross_checks(values):
        errors.setdefault(name, message)
    # The registry checks the variables it reads itself (it cannot import this module); its
    # words win, so Django and the code location report them alike.
    errors.update(registry.environment_problems(environ))
    return CheckedSettings(values, errors)


# -- consumers -------------------------------------------------------------------------------
def _configured_errors() -> dict[str, str]:
    from django.conf import settings

    return dict(getattr(settings, "VALIDIBOT_SETTINGS_ERRORS", {}) or {})


def setting_errors(names: Iterable[str]) -> list[str]:
    """The messages of those of ``names`` that are invalid in the running settings."""
    errors = _configured_errors()
    return [errors[name] for name in dict.fromkeys(names) if name in errors]


def task_settings(task_id: str) -> tuple[str, ...]:
    """The variables the task's runs read (from the table)."""
    return tuple(s.name for s in SETTINGS if task_id in s.tasks)


def task_setting_errors(task_id: str, extra: Iterable[str | None] = ()) -> list[str]:
    """Why the task must not run: its invalid settings (and ``extra`` names), plus the
    registry-wide variables every task's registry entry is built from."""
    names = [*task_settings(task_id), *(n for n in extra if n)]
    names += [registry.TIMEZONE_ENV, registry.SOFT_LIMIT_ENV, registry.HARD_LIMIT_ENV]
    return setting_errors(names)


def all_setting_errors() -> dict[str, str]:
    """Every invalid variable in the running settings, by name (for ``doctor``)."""
    return _configured_errors()


def require(names: Iterable[str]) -> None:
    """Raise :class:`SettingsError` naming every invalid one of ``names``."""
    problems = setting_errors(names)
    if problems:
        raise SettingsError("; ".join(problems))
