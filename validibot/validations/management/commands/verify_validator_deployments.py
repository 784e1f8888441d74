"""Check that every validator deployment named in settings answers; fail when any is down."""

from __future__ import annotations

from typing import Any

import requests
from django.conf import settings
from django.core.management.base import CommandError

from validibot.core.maintenance import MaintenanceCommand


class DeploymentsDown(Exception):  # noqa: N818  (reads as the condition it reports)
    """One or more validator deployments did not answer with a success status."""


class Command(MaintenanceCommand):
    help = (
        "GET each URL in VALIDIBOT_VALIDATOR_DEPLOYMENTS (name=url pairs) and count the "
        "deployments that answer with a status below 400; any other answer, a timeout "
        "(VALIDIBOT_VALIDATOR_CHECK_TIMEOUT_SECONDS) or a connection error counts as down and "
        "fails the run. A dry run lists the deployments without contacting them."
    )
    task_name = "verify_validator_deployments"

    def check_options(self, options: dict[str, Any]) -> None:
        deployments = settings.VALIDIBOT_VALIDATOR_DEPLOYMENTS
        bad = sorted(
            name
            for name, url in deployments.items()
            if not str(url).startswith(("http://", "https://"))
        )
        if bad:
            raise CommandError(
                f"VALIDIBOT_VALIDATOR_DEPLOYMENTS: the URL of {', '.join(bad)} must start with "
                "http:// or https://"
            )
        self.deployments: dict[str, str] = dict(deployments)
        self.summary_extra: dict[str, Any] = {"down": []}

    def perform(self, options: dict[str, Any]) -> None:
        if not self.deployments:
            self.progress("no validator deployments configured (VALIDIBOT_VALIDATOR_DEPLOYMENTS)")
            return
        if self.dry_run:
            self.counts["checked"] = len(self.deployments)
            self.progress(f"dry run: would check {', '.join(sorted(self.deployments))}")
            return
        timeout = settings.VALIDIBOT_VALIDATOR_CHECK_TIMEOUT_SECONDS
        with requests.Session() as session:
            for name in sorted(self.deployments):
                self._check(session, name, timeout)
        if self.summary_extra["down"]:
            raise DeploymentsDown(
                f"{len(self.summary_extra['down'])} validator deployment(s) down: "
                f"{', '.join(self.summary_extra['down'])}"
            )

    def _check(self, session: requests.Session, name: str, timeout: float) -> None:
        self.counts["checked"] += 1
        try:
            response = session.get(self.deployments[name], timeout=timeout)
            problem = None if response.ok else f"answered HTTP {response.status_code}"
        except requests.RequestException as exc:
            # The exception text repeats the URL, which may carry a token: log its type only.
            problem = f"did not answer ({type(exc).__name__})"
        if problem is None:
            self.counts["healthy"] += 1
            self.progress(f"{name}: ok")
            return
        self.counts["down"] += 1
        self.summary_extra["down"].append(name)
        self.stderr.write(f"{name}: DOWN, {problem}")

    def emit_summary(self, status: str, started: float, **extra: Any) -> None:
        super().emit_summary(status, started, **getattr(self, "summary_extra", {}), **extra)
