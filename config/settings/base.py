"""Settings shared by every environment; each value can be overridden from the environment."""

from pathlib import Path

import environ

from validibot.core.settings_check import check_environment

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()

SECRET_KEY = env("DJANGO_SECRET_KEY", default="insecure-local-only-key")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])

# Apps are listed bottom-up: core (the shared base), the data apps, then the apps that sit on
# top of them (retention purges submissions and outputs; operations talks to Dagster; demo
# seeds everything). An app imports only apps listed before it.
INSTALLED_APPS = [
    "validibot.core",
    "validibot.submissions",
    "validibot.validations",
    "validibot.notifications",
    "validibot.retention",
    "validibot.audit",
    "validibot.idp",
    "validibot.operations",
    "validibot.demo",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

# SQLite next to the project by default (zero set-up); DATABASE_URL selects Postgres.
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
# Long-lived workers must not keep a connection that the server has since closed.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = env("DJANGO_TIME_ZONE", default="UTC")

MEDIA_ROOT = Path(env("VALIDIBOT_MEDIA_ROOT", default=str(BASE_DIR / "media")))
MEDIA_URL = "/media/"

SESSION_ENGINE = "django.contrib.sessions.backends.db"

# Django 6.1 mailers. Alerts and periodic emails send through "default". Tests get locmem.
# EMAIL_URL (django-environ, e.g. smtp+tls://user:pass@host:587) selects SMTP options.
_email = env.email("EMAIL_URL", default="consolemail://")
MAILERS = {
    "default": {
        "BACKEND": _email.pop("EMAIL_BACKEND"),
        "OPTIONS": {
            option: _email[key]
            for key, option in {
                "EMAIL_HOST": "host",
                "EMAIL_PORT": "port",
                "EMAIL_HOST_USER": "username",
                "EMAIL_HOST_PASSWORD": "password",
                "EMAIL_USE_TLS": "use_tls",
                "EMAIL_USE_SSL": "use_ssl",
            }.items()
            if _email.get(key)
        },
    },
}
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="validibot@localhost")

# --- Redis / Celery (the production topology's broker; unused by the embedded default) ---
REDIS_URL = env("REDIS_URL", default="redis://localhost:6379/0")
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_WORKER_CONCURRENCY = env.int("CELERY_WORKER_CONCURRENCY", default=1)

# --- Scheduled maintenance: time limits, retention windows, thresholds, batch sizes ---
# Every VALIDIBOT_* variable is checked once, here, against the table in
# validibot/core/settings_check.py (type, range, format). A bad value never stops this module
# from loading: the setting becomes an InvalidSetting, its message goes to
# VALIDIBOT_SETTINGS_ERRORS, and only what reads it refuses to start (that task's command, the
# trigger), naming the variable. `manage.py doctor` lists every invalid one.
# The default per-task time limits (VALIDIBOT_TASK_SOFT/HARD_TIME_LIMIT_SECONDS) are read by
# the registry itself, which Dagster loads without Django: see validibot/tasks/registry.py.
_checked = check_environment()
VALIDIBOT_SETTINGS_ERRORS = _checked.errors
VALIDIBOT_PURGE_BATCH_SIZE = _checked.env("VALIDIBOT_PURGE_BATCH_SIZE")
VALIDIBOT_PURGE_MAX_BATCHES = _checked.env("VALIDIBOT_PURGE_MAX_BATCHES")
VALIDIBOT_PURGE_RETRY_BATCH_SIZE = _checked.env("VALIDIBOT_PURGE_RETRY_BATCH_SIZE")
VALIDIBOT_PURGE_RETRY_ALERT_ATTEMPTS = _checked.env("VALIDIBOT_PURGE_RETRY_ALERT_ATTEMPTS")
VALIDIBOT_PURGE_RETRY_BASE_SECONDS = _checked.env("VALIDIBOT_PURGE_RETRY_BASE_SECONDS")
VALIDIBOT_PURGE_RETRY_MAX_SECONDS = _checked.env("VALIDIBOT_PURGE_RETRY_MAX_SECONDS")
# How long a validator may take (upstream's name and default, 60 min). cleanup_stuck_runs uses
# it when given no --timeout-minutes; its schedule passes 30 minutes, as upstream's does.
VALIDATOR_TIMEOUT_SECONDS = _checked.env("VALIDATOR_TIMEOUT_SECONDS")
# Before its sweep, cleanup_stuck_runs re-dispatches durable continuations interrupted after
# their callback arrived (validibot/validations/continuations.py): one never dispatched this
# long after the callback was received, one dispatched but not picked up for this long, one
# executing for this long (upstream's names and defaults; execution must exceed dispatch).
VALIDATION_CALLBACK_PROCESSING_STALE_SECONDS = _checked.env(
    "VALIDATION_CALLBACK_PROCESSING_STALE_SECONDS"
)
VALIDATION_CONTINUATION_DISPATCH_STALE_SECONDS = _checked.env(
    "VALIDATION_CONTINUATION_DISPATCH_STALE_SECONDS"
)
VALIDATION_CONTINUATION_EXECUTION_STALE_SECONDS = _checked.env(
    "VALIDATION_CONTINUATION_EXECUTION_STALE_SECONDS"
)
VALIDIBOT_IDEMPOTENCY_KEY_TTL_HOURS = _checked.env("VALIDIBOT_IDEMPOTENCY_KEY_TTL_HOURS")
VALIDIBOT_CALLBACK_RECEIPT_RETENTION_DAYS = _checked.env(
    "VALIDIBOT_CALLBACK_RECEIPT_RETENTION_DAYS"
)
VALIDIBOT_CLEANUP_BATCH_SIZE = _checked.env("VALIDIBOT_CLEANUP_BATCH_SIZE")
VALIDIBOT_CONTAINER_GRACE_SECONDS = _checked.env("VALIDIBOT_CONTAINER_GRACE_SECONDS")
# Dagster runs (and their event logs) older than this are rolled up and deleted.
VALIDIBOT_DAGSTER_RUN_RETENTION_DAYS = _checked.env("VALIDIBOT_DAGSTER_RUN_RETENTION_DAYS")
# SQLite only: where the per-task lock files go (default: beside the database file).
VALIDIBOT_LOCK_DIR = _checked.env("VALIDIBOT_LOCK_DIR")
VALIDIBOT_DOCKER_URL = _checked.env("VALIDIBOT_DOCKER_URL")
# true: cleanup_orphaned_containers fails its run when no engine answers (compose sets it on
# worker-docker, so a missing socket mount is an error, not a quiet success).
VALIDIBOT_CONTAINERS_REQUIRE_ENGINE = _checked.env("VALIDIBOT_CONTAINERS_REQUIRE_ENGINE")
# verify_validator_deployments: "name=url,name2=url2"; each URL must answer a GET with < 400.
VALIDIBOT_VALIDATOR_DEPLOYMENTS = _checked.env("VALIDIBOT_VALIDATOR_DEPLOYMENTS")
VALIDIBOT_VALIDATOR_CHECK_TIMEOUT_SECONDS = _checked.env(
    "VALIDIBOT_VALIDATOR_CHECK_TIMEOUT_SECONDS"
)

# --- OIDC identity provider (purge_stale_oidc_clients) ---
# Dynamically registered clients inactive this many days and holding no live token are deleted.
IDP_OIDC_DCR_INACTIVE_CLIENT_RETENTION_DAYS = _checked.env(
    "IDP_OIDC_DCR_INACTIVE_CLIENT_RETENTION_DAYS"
)

# --- Audit-log retention (enforce_audit_retention) ---
# Entries older than this many days are archived, verified, then deleted.
AUDIT_HOT_RETENTION_DAYS = env.int("AUDIT_HOT_RETENTION_DAYS", default=90)
# "null" (default: delete without keeping a copy, as upstream), "filesystem" (JSON Lines files
# under AUDIT_ARCHIVE_PATH, fsynced and read back before any row is deleted), or the dotted
# path of a backend class.
AUDIT_ARCHIVE_BACKEND = env("AUDIT_ARCHIVE_BACKEND", default="null")
AUDIT_ARCHIVE_PATH = env("AUDIT_ARCHIVE_PATH", default="")
# The incident switch: false freezes retention (the command logs "frozen" and exits 0).
AUDIT_RETENTION_ENABLED = env.bool("AUDIT_RETENTION_ENABLED", default=True)
AUDIT_RETENTION_CHUNK_SIZE = env.int("AUDIT_RETENTION_CHUNK_SIZE", default=500)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("DJANGO_LOG_LEVEL", default="INFO")},
}

# --- Operator surfaces: the Dagster GraphQL client and the authenticated HTTP trigger ---
# The Dagster webserver the GraphQL client (sync_schedules, the HTTP trigger) talks to.
VALIDIBOT_DAGSTER_URL = _checked.env("VALIDIBOT_DAGSTER_URL")
# Where people open the UI, when it differs from the internal URL (run links in API answers).
VALIDIBOT_DAGSTER_UI_URL = _checked.env("VALIDIBOT_DAGSTER_UI_URL") or VALIDIBOT_DAGSTER_URL
# POST /api/v1/scheduled/<id>/ bearer tokens. No default anywhere: with neither set, the
# endpoint answers 503 "trigger disabled" (never open). The global token may trigger every
# task; VALIDIBOT_TRIGGER_TASK_TOKENS="task_id=token,other_id=token2" scopes a token to one
# task (another task answers 403); an entry without "=" makes the trigger answer 503 naming
# the variable, never every command fail. Generate with `python -c "import secrets;
# print(secrets.token_urlsafe(32))"`.
VALIDIBOT_TRIGGER_TOKEN = _checked.env("VALIDIBOT_TRIGGER_TOKEN")
VALIDIBOT_TRIGGER_TASK_TOKENS = _checked.env("VALIDIBOT_TRIGGER_TASK_TOKENS")
# Public base URL of this Django service, used by `sync_schedules --backend=gcp` for the
# Cloud Scheduler HTTP targets.
VALIDIBOT_TRIGGER_BASE_URL = _checked.env("VALIDIBOT_TRIGGER_BASE_URL")
