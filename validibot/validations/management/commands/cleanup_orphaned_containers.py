"""Remove validator containers that outlived their runs (Docker Compose deployments)."""

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from validibot.core.batches import chunks, run_in_batches
from validibot.core.maintenance import MaintenanceCommand, non_negative_int
from validibot.validations.containers import MANAGED_LABEL, ContainerInfo, describe, orphan_reason
from validibot.validations.models import TERMINAL, ValidationRun


class Command(MaintenanceCommand):
    help = (
        "Stop and remove containers labelled org.validibot.managed=true whose run is terminal "
        "or missing, or that outlived their timeout plus --grace-period. Unlabelled containers "
        "are never touched. With no reachable Docker engine it says so and exits 0 (use "
        "--require-engine, or VALIDIBOT_CONTAINERS_REQUIRE_ENGINE=true, to make that an error)."
    )
    task_name = "cleanup_orphaned_containers"

    def add_task_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--all",
            action="store_true",
            help="Remove every Validibot-managed container, whatever its age or run.",
        )
        parser.add_argument(
            "--grace-period",
            type=non_negative_int,
            default=None,
            help="Seconds added to each container's timeout, and the minimum age before a "
            "container with a missing run is removed "
            "(default: settings.VALIDIBOT_CONTAINER_GRACE_SECONDS, 300).",
        )
        parser.add_argument(
            "--require-engine",
            action="store_true",
            help="Fail when no Docker engine is reachable instead of reporting it "
            "(default: settings.VALIDIBOT_CONTAINERS_REQUIRE_ENGINE).",
        )

    def perform(self, options: dict[str, Any]) -> None:
        require = options["require_engine"] or settings.VALIDIBOT_CONTAINERS_REQUIRE_ENGINE
        client = self._client(require)
        if client is None:
            return
        grace = options["grace_period"]
        if grace is None:
            grace = settings.VALIDIBOT_CONTAINER_GRACE_SECONDS
        containers = client.containers.list(all=True, filters={"label": f"{MANAGED_LABEL}=true"})
        pairs = [(container, describe(container)) for container in containers]
        statuses = self._run_statuses([info for _, info in pairs])
        limit = self.dry_run_limit()

        def examine(batch: Sequence[tuple[Any, ContainerInfo]]) -> None:
            for container, info in batch:
                self.counts["examined"] += 1
                reason = (
                    "--all"
                    if options["all"]
                    else orphan_reason(
                        info, statuses.get(info.run_id or ""), TERMINAL, self.now, grace
                    )
                )
                if reason is None or (limit is not None and self.counts["removed"] >= limit):
                    self.counts["kept"] += 1
                    continue
                self._remove(container, info, reason)

        # Docker calls, not rows: no transaction; a stop is honoured between batches. Every
        # container is examined; --max-batches limits removals through ``limit`` above.
        run_in_batches(
            chunks(pairs),
            examine,
            batch_size=self.batch_size,
            should_stop=self.should_stop,
            using=None,
        )
        if self.counts["errors"]:
            raise RuntimeError(f"{self.counts['errors']} container(s) could not be removed")

    def _client(self, require_engine: bool):
        try:
            import docker

            client = (
                docker.DockerClient(base_url=settings.VALIDIBOT_DOCKER_URL)
                if (settings.VALIDIBOT_DOCKER_URL)
                else docker.from_env()
            )
            client.ping()
        except Exception as exc:  # ImportError or any engine/connection error
            message = f"Docker engine not reachable ({type(exc).__name__}: {exc}); nothing removed."
            if require_engine:
                # Name the engine: a missing socket mount (DOCKER_SOCKET) is the usual cause.
                where = settings.VALIDIBOT_DOCKER_URL or "DOCKER_HOST / the default socket"
                raise CommandError(
                    f"Docker engine not reachable at {where} ({type(exc).__name__}: {exc}); "
                    "nothing removed (an engine is required: --require-engine or "
                    "VALIDIBOT_CONTAINERS_REQUIRE_ENGINE=true)"
                ) from exc
            self.counts["engine_unreachable"] = 1
            self.progress(message)
            return None
        return client

    def _run_statuses(self, infos: list[ContainerInfo]) -> dict[str, str]:
        ids = [int(i.run_id) for i in infos if i.run_id and i.run_id.isdigit()]
        rows = ValidationRun.objects.filter(pk__in=ids).values_list("pk", "status")
        return {str(pk): status for pk, status in rows}

    def _remove(self, container: Any, info: ContainerInfo, reason: str) -> None:
        verb = "would remove" if self.dry_run else "removing"
        self.progress(f"{verb} {info.name} ({info.id[:12]}): {reason}")
        if self.dry_run:
            self.counts["removed"] += 1
            return
        try:
            container.remove(force=True)
        except Exception as exc:  # one stuck container must not stop the others
            self.counts["errors"] += 1
            self.stderr.write(f"could not remove {info.name}: {type(exc).__name__}: {exc}")
            return
        self.counts["removed"] += 1
