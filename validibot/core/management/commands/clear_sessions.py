"""clear_sessions: Django's clearsessions, batched and summarised (Django's own command stays)."""

from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.sessions.models import Session

from validibot.core.maintenance import MaintenanceCommand

DB_ENGINES = ("django.contrib.sessions.backends.db", "django.contrib.sessions.backends.cached_db")


class Command(MaintenanceCommand):
    help = (
        "Delete expired sessions (expire_date <= now). With a database session engine this "
        "works in committed batches and supports --dry-run; other engines get their own "
        "clear_expired()."
    )
    task_name = "clear_sessions"

    def perform(self, options: dict[str, Any]) -> None:
        if settings.SESSION_ENGINE in DB_ENGINES:
            expired = Session.objects.filter(expire_date__lte=self.now)
            self.delete_in_batches(expired, "deleted")
            return
        self.progress(f"session engine {settings.SESSION_ENGINE} is not batched here")
        if not self.dry_run:
            engine = import_module(settings.SESSION_ENGINE)
            engine.SessionStore.clear_expired()
