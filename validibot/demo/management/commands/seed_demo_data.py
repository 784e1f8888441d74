"""Create realistic rows for every maintenance task: expired and live, at any scale."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.contrib.sessions.models import Session
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.utils import timezone

from validibot.audit.models import AuditActor, AuditLogEntry
from validibot.core.maintenance import positive_int
from validibot.idp.models import OIDCClient, OIDCToken
from validibot.operations.models import IdempotencyKey
from validibot.retention.models import PurgeRetry
from validibot.submissions.models import RetentionPolicy, Submission
from validibot.validations.models import (
    CallbackReceipt,
    RunStatus,
    ValidationOutput,
    ValidationRun,
    ValidationRunContinuation,
)

# Per unit of --scale: (expired, live) rows of each kind.
EXPIRED, LIVE = 10, 5
BUSY, STUCK, RETRIES = 2, 3, 2
# Durable continuations: one interrupted (its callback arrived an hour ago, never dispatched)
# and one whose run has since been canceled, per unit of --scale.
INTERRUPTED, ENDED = 1, 1
# OIDC clients: of the 10 stale DCR clients half hold an expired token; of the 5 live ones two
# are stale but hold a live token, two are recent and one is static (never purged).
HELD, RECENT = 2, 2


class Command(BaseCommand):
    help = (
        "Create demo rows for every maintenance task: per unit of --scale, 10 expired and 5 "
        "live submissions, outputs, idempotency keys, callback receipts, sessions and audit-log "
        "entries (each expired entry by its own actor), 2 expired "
        "submissions still in an active run, 3 stuck runs, 2 due purge retries, 1 interrupted "
        "durable continuation and 1 whose run was canceled, and 10 stale and 5 kept OIDC "
        "clients. Adds rows "
        "each time it runs; --reset first deletes the rows an earlier seeding created."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--scale", type=positive_int, default=1, help="Multiply row counts.")
        parser.add_argument(
            "--no-files", action="store_true", help="Do not write stored files (faster at scale)."
        )
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Delete earlier demo rows first, so every seeding leaves the same state "
            "(validibot-ops demo uses this: its table is the same on every run).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.now = timezone.now()
        self.files = not options["no_files"]
        n = options["scale"]
        counts: dict[str, int] = {}
        with transaction.atomic():
            if options["reset"]:
                self.stdout.write(json.dumps({"reset": self._reset()}))
            counts["submissions"] = self._submissions(n)
            counts["outputs"] = self._outputs(n)
            counts["stuck_runs"] = self._stuck_runs(n)
            counts["continuations"] = self._continuations(n)
            counts["purge_retries"] = self._retries(n)
            counts["idempotency_keys"] = self._keys(n)
            counts["callback_receipts"] = self._receipts(n)
            counts["sessions"] = self._sessions(n)
            counts["audit_entries"] = self._audit_entries(n)
            counts["oidc_clients"] = self._oidc_clients(n)
        self.stdout.write(json.dumps({"seeded": counts}))

    def _reset(self) -> int:
        """Delete what earlier seedings created (recognised by their demo names and keys).

        Without this, rows of earlier seedings pile up: the busy submissions stay busy and
        expired, so ``skipped_busy`` grows with every demo. Runs, outputs and purge retries
        go with their submissions (CASCADE).
        """
        deleted = 0
        for queryset in (
            Submission.objects.filter(name__startswith="demo submission "),
            IdempotencyKey.objects.filter(key__startswith="demo-"),
            CallbackReceipt.objects.filter(callback_id__startswith="demo-"),
            Session.objects.filter(session_key__startswith="demo", session_data="e30:demo"),
            # Entries before their actors (PROTECT); live entries would otherwise pile up.
            AuditLogEntry.objects.filter(actor__identifier__startswith="demo-user-"),
            AuditActor.objects.filter(identifier__startswith="demo-user-"),
            OIDCClient.objects.filter(client_id__startswith="demo-"),  # tokens: CASCADE
        ):
            deleted += queryset.delete()[0]
        return deleted

    def _file(self, folder: str, index: int) -> str:
        if not self.files:
            return ""
        name = f"{folder}/demo-{self.now:%Y%m%d%H%M%S%f}-{index}.json"
        return default_storage.save(name, ContentFile(b'{"demo": true}'))

    def _submissions(self, n: int) -> int:
        expired_at, live_at = self.now - timedelta(hours=1), self.now + timedelta(days=7)
        rows = [
            Submission(
                name=f"demo submission {i}",
                content='{"payload": "expired"}' if i < EXPIRED * n else '{"payload": "live"}',
                file=self._file("submissions", i),
                retention_policy=RetentionPolicy.DAYS_7,
                expires_at=expired_at if i < (EXPIRED + BUSY) * n else live_at,
            )
            for i in range((EXPIRED + BUSY + LIVE) * n)
        ]
        created = Submission.objects.bulk_create(rows, batch_size=1000)
        runs = [
            ValidationRun(
                submission=sub,
                status=RunStatus.RUNNING
                if EXPIRED * n <= i < (EXPIRED + BUSY) * n
                else RunStatus.SUCCEEDED,
                started_at=self.now - timedelta(minutes=5),
                finished_at=None if EXPIRED * n <= i < (EXPIRED + BUSY) * n else self.now,
            )
            for i, sub in enumerate(created)
        ]
        ValidationRun.objects.bulk_create(runs, batch_size=1000)
        return len(created)

    def _outputs(self, n: int) -> int:
        run = ValidationRun.objects.filter(status=RunStatus.SUCCEEDED).order_by("-pk").first()
        rows = [
            ValidationOutput(
                run=run,
                name=f"report-{i}.json",
                content='{"findings": []}',
                file=self._file("outputs", i),
                expires_at=self.now - timedelta(minutes=10)
                if i < EXPIRED * n
                else self.now + timedelta(days=1),
            )
            for i in range((EXPIRED + LIVE) * n)
        ]
        return len(ValidationOutput.objects.bulk_create(rows, batch_size=1000))

    def _stuck_runs(self, n: int) -> int:
        live = Submission.objects.filter(expires_at__gt=self.now).order_by("-pk")[: STUCK * n]
        runs = [
            ValidationRun(
                submission=sub, status=RunStatus.RUNNING, started_at=self.now - timedelta(hours=2)
            )
            for sub in live
        ]
        return len(ValidationRun.objects.bulk_create(runs, batch_size=1000))

    def _continuations(self, n: int) -> int:
        # The stuck runs' submissions: a running run there holds back no purge or retry.
        live = Submission.objects.filter(expires_at__gt=self.now).order_by("-pk")
        runs = ValidationRun.objects.bulk_create(
            ValidationRun(
                submission=sub,
                status=RunStatus.RUNNING if i < INTERRUPTED * n else RunStatus.CANCELED,
                started_at=self.now - timedelta(hours=1, minutes=5),
                heartbeat_at=self.now - timedelta(hours=1),
            )
            for i, sub in enumerate(live[: (INTERRUPTED + ENDED) * n])
        )
        rows = [
            ValidationRunContinuation(run=run, callback_received_at=self.now - timedelta(hours=1))
            for run in runs
        ]
        return len(ValidationRunContinuation.objects.bulk_create(rows, batch_size=1000))

    def _retries(self, n: int) -> int:
        targets = Submission.objects.filter(
            expires_at__gt=self.now, content_purged_at__isnull=True, purge_retries__isnull=True
        ).order_by("pk")[: RETRIES * n]
        retries = [
            PurgeRetry(
                submission=sub,
                attempts=1,
                next_retry_at=self.now - timedelta(minutes=1),
                last_error="OSError: demo: storage was unavailable",
            )
            for sub in targets
        ]
        return len(PurgeRetry.objects.bulk_create(retries, batch_size=1000))

    def _keys(self, n: int) -> int:
        stamp = f"{self.now:%Y%m%d%H%M%S%f}"
        keys = [
            IdempotencyKey(
                key=f"demo-{stamp}-{i}",
                created_at=self.now - timedelta(hours=30),
                expires_at=self.now - timedelta(hours=6)
                if i < EXPIRED * n
                else self.now + timedelta(hours=6),
            )
            for i in range((EXPIRED + LIVE) * n)
        ]
        return len(IdempotencyKey.objects.bulk_create(keys, batch_size=1000))

    def _receipts(self, n: int) -> int:
        stamp = f"{self.now:%Y%m%d%H%M%S%f}"
        receipts = [
            CallbackReceipt(
                callback_id=f"demo-{stamp}-{i}",
                status="succeeded",
                received_at=self.now - timedelta(days=45 if i < EXPIRED * n else 2),
            )
            for i in range((EXPIRED + LIVE) * n)
        ]
        return len(CallbackReceipt.objects.bulk_create(receipts, batch_size=1000))

    def _sessions(self, n: int) -> int:
        stamp = f"{self.now:%Y%m%d%H%M%S%f}"
        sessions = [
            Session(
                session_key=f"demo{stamp}{i:08d}"[:40],
                session_data="e30:demo",
                expire_date=self.now - timedelta(days=1)
                if i < EXPIRED * n
                else self.now + timedelta(days=1),
            )
            for i in range((EXPIRED + LIVE) * n)
        ]
        return len(Session.objects.bulk_create(sessions, batch_size=1000))

    def _audit_entries(self, n: int) -> int:
        # Past the default 90-day hot window: archived and deleted, their actors swept.
        old = self.now - timedelta(days=120)
        actors = AuditActor.objects.bulk_create(
            AuditActor(identifier=f"demo-user-{i}@example.com", created_at=old)
            for i in range(EXPIRED * n + 1)
        )
        entries = [
            AuditLogEntry(
                actor=actor,
                action="submission.viewed",
                target=f"submission:{i}",
                timestamp=old,
                payload={"demo": True},
            )
            for i, actor in enumerate(actors[: EXPIRED * n])
        ]
        entries += [
            AuditLogEntry(actor=actors[-1], action="submission.created", timestamp=self.now)
            for _ in range(LIVE * n)
        ]
        return len(AuditLogEntry.objects.bulk_create(entries, batch_size=1000))

    def _oidc_clients(self, n: int) -> int:
        stamp = f"{self.now:%Y%m%d%H%M%S%f}"
        old, recent = self.now - timedelta(days=60), self.now - timedelta(days=2)
        kinds = ["stale"] * EXPIRED * n + ["held"] * HELD * n + ["recent"] * RECENT * n
        kinds += ["static"] * (LIVE - HELD - RECENT) * n
        clients = OIDCClient.objects.bulk_create(
            OIDCClient(
                client_id=f"demo-{stamp}-{i}",
                name=f"demo {kind} client {i}",
                dynamically_registered=kind != "static",
                created_at=recent if kind == "recent" else old,
                last_used_at=None if i % 2 else (recent if kind == "recent" else old),
            )
            for i, kind in enumerate(kinds)
        )
        expired, live = self.now - timedelta(days=50), self.now + timedelta(hours=1)
        tokens = [
            OIDCToken(client=client, expires_at=live if kind == "held" else expired)
            for i, (client, kind) in enumerate(zip(clients, kinds, strict=True))
            if kind == "held" or (kind == "stale" and i % 2)
        ]
        OIDCToken.objects.bulk_create(tokens, batch_size=1000)
        return len(clients)
