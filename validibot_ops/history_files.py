"""Remove the files a deleted run leaves behind: what GraphQL's ``deleteRun`` cannot reach.

``prune_dagster_history`` (Django side) deletes old runs over GraphQL, which removes a run's
row and its event-log records (``DagsterInstance.delete_run``) and nothing else. Two kinds of
file outlive it, and the GraphQL schema of Dagster 1.13 has no mutation for either:

- the run's **compute logs** (``$DAGSTER_HOME/storage/<run id>/`` with the default
  ``LocalComputeLogManager``);
- on **SQLite** storage, the run's event-log shard ``history/runs/<run id>.db``: emptied by
  the delete but kept, about 120 KB each (900 runs a day would leave about 100 MB a day).

Django code must not import Dagster, so the removal lives here, on the Dagster side, where the
instance's storage and compute log manager are: a sensor sweeps the files whose run no longer
exists in run storage. It is idempotent (a file is only removed once its run is gone, which a
prune made so), bounded per tick, and needs no coordination with the prune (a run still being
rolled up still exists). Compute log managers that keep logs elsewhere (S3, GCS, Azure) cannot
be listed through Dagster's API; set a lifecycle rule on the bucket there (docs/operations.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from validibot_ops.dagster_internals import LocalComputeLogManager, SqliteEventLogStorage

RUN_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SENSOR_NAME = "validibot_history_files"
INTERVAL_SECONDS = 3600
MAX_PER_TICK = 2000


@dataclass
class Swept:
    """What one sweep removed."""

    shards: int = 0
    compute_logs: int = 0

    def __str__(self) -> str:
        return (
            f"removed {self.shards} event-log shard(s) and {self.compute_logs} compute-log "
            "folder(s) of deleted runs"
        )


def _orphans(folder: Path, pattern: str, instance: dg.DagsterInstance, limit: int) -> list[Path]:
    if not folder.is_dir():
        return []
    found: list[Path] = []
    for path in sorted(folder.glob(pattern)):
        name = path.name.removesuffix(".db")
        if RUN_ID.match(name) and not instance.has_run(name):
            found.append(path)
            if len(found) >= limit:
                break
    return found


def sweep_deleted_run_files(instance: dg.DagsterInstance, limit: int = MAX_PER_TICK) -> Swept:
    """Remove the compute logs and SQLite shards of runs that no longer exist (up to ``limit``
    of each)."""
    swept = Swept()
    storage = instance.event_log_storage
    if isinstance(storage, SqliteEventLogStorage):
        for shard in _orphans(Path(storage._base_dir), "*.db", instance, limit):  # noqa: SLF001
            shard.unlink(missing_ok=True)
            swept.shards += 1
    manager = instance.compute_log_manager
    if isinstance(manager, LocalComputeLogManager):
        base = Path(manager._base_dir)  # noqa: SLF001  (no public accessor in 1.13)
        for folder in _orphans(base, "*", instance, limit):
            manager.delete_logs(prefix=[folder.name])
            swept.compute_logs += 1
    return swept


def build_history_files_sensor() -> dg.SensorDefinition:
    """Hourly, remove what deleted runs left on disk (see the module docstring)."""

    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Removes the compute logs (and, on SQLite, the event-log shard files) of "
        "runs prune_dagster_history deleted: GraphQL's deleteRun leaves them.",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        return dg.SkipReason(str(sweep_deleted_run_files(context.instance)))

    return _sensor
