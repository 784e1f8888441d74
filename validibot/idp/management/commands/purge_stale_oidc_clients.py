"""Delete inactive dynamically registered OIDC clients that hold no live token, in batches."""

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser

from validibot.core.maintenance import MaintenanceCommand, claim_pks, count_limited, positive_int
from validibot.idp.querysets import inactive_dcr_clients, stale_dcr_clients


class Command(MaintenanceCommand):
    help = (
        "Delete OIDC clients registered dynamically (DCR) whose last activity (last_used_at, "
        "else created_at) is older than --retention-days and that hold no live token "
        "(unrevoked and unexpired); their dead tokens go with them. Statically configured "
        "clients are never touched."
    )
    task_name = "purge_stale_oidc_clients"

    def add_task_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--retention-days",
            type=positive_int,
            default=None,
            help="Keep inactive DCR clients this many days, at least 1 "
            "(default: settings.IDP_OIDC_DCR_INACTIVE_CLIENT_RETENTION_DAYS, 30).",
        )

    def check_options(self, options: dict[str, Any]) -> None:
        self.retention_days: int = (
            options["retention_days"] or settings.IDP_OIDC_DCR_INACTIVE_CLIENT_RETENTION_DAYS
        )

    def perform(self, options: dict[str, Any]) -> None:
        cutoff = self.now - timedelta(days=self.retention_days)
        stale = stale_dcr_clients(self.now, cutoff)
        if self.dry_run:
            self.counts["deleted"] = count_limited(stale, self.dry_run_limit())
        else:
            # Staleness is checked again at delete time: a token issued since the claim saves
            # its client.
            self.run_in_batches(
                lambda size: claim_pks(stale, size),
                lambda pks: stale.filter(pk__in=pks).delete(),
                self._report_batch,
            )
        held = inactive_dcr_clients(self.now, cutoff).filter(has_live_token=True)
        self.counts["kept_live_token"] = held.count()
        verb = "Would delete" if self.dry_run else "Deleted"
        self.progress(f"{verb} {self.counts['deleted']} inactive DCR client(s).")

    def _report_batch(
        self, number: int, pks: Sequence[int], deleted: tuple[int, dict[str, int]]
    ) -> None:
        _, by_model = deleted
        clients = by_model.get("idp.OIDCClient", 0)
        self.counts["deleted"] += clients
        self.counts["tokens_deleted"] += by_model.get("idp.OIDCToken", 0)
        self.progress(f"batch {number}: deleted {clients} client(s)")
