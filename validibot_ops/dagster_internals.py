"""Every private Dagster name the code location uses, in one place, each with the reason no
public API serves (Dagster 1.13). Modules import them from here, never from ``dagster._…``
(``tests/validibot/test_layout.py`` refuses it), so an upgrade has one file to check.
"""

# Run launcher: the warm mode is a RunLauncher subclass configured from dagster.yaml; Dagster
# exports neither the base class nor its contexts, nor the serialisable-config protocol.
# Warm runs: the body of `dagster api execute_run`, run inside a Celery worker's pool process
# (the CLI entry point would fork a new interpreter, which is what warm mode avoids).
from dagster._cli.api import _execute_run_command_body

# Freshness state records (the freshness sensor writes them for the UI's freshness column).
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateRecord

# Schedule and sensor state on the instance (maintenance mode, the failure policy's pause,
# freshness): DagsterInstance's add/update_instigator_state take these, with no public export.
from dagster._core.definitions.run_request import InstigatorType

# A run's engine events (which worker executed it): report_engine_event takes this type.
from dagster._core.events import EngineEventData

# The offline demo executes a run in this process from its remote origin.
from dagster._core.execution.api import execute_run
from dagster._core.launcher import (
    CheckRunHealthResult,
    LaunchRunContext,
    ResumeRunContext,
    RunLauncher,
    WorkerStatus,
)
from dagster._core.remote_origin import RemoteInstigatorOrigin, RemoteRepositoryOrigin

# Loading the workspace the way the webserver does (the instance-direct schedule sync and the
# offline demo): no public loader returns remote schedules and jobs.
from dagster._core.remote_representation.code_location import CodeLocation
from dagster._core.remote_representation.external import RemoteJob, RemoteRepository, RemoteSchedule
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorStatus,
    ScheduleInstigatorData,
)

# Asset-check execution records (a check's latest result, read back by the checks sensor).
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
)

# History files (the pruning of event-log shards and compute logs on the local instance).
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager

# Dagster's own tag for run retries: a run refused by the launcher must not be retried.
from dagster._core.storage.tags import MAX_RETRIES_TAG
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import ConfigurableClass, ConfigurableClassData, pack_value, unpack_value
from dagster._utils.hosted_user_process import recon_job_from_origin

# Dagster's own cron check (stricter than croniter: `0 0 31 2 *` passes croniter, not Dagster),
# so an overrides entry is refused the way the schedule itself would be.
from dagster._utils.schedules import is_valid_cron_schedule

__all__ = [
    "AssetCheckExecutionRecord",
    "AssetCheckExecutionRecordStatus",
    "CheckRunHealthResult",
    "CodeLocation",
    "ConfigurableClass",
    "ConfigurableClassData",
    "EngineEventData",
    "ExecuteRunArgs",
    "FreshnessState",
    "FreshnessStateRecord",
    "InstigatorState",
    "InstigatorStatus",
    "InstigatorType",
    "LaunchRunContext",
    "LocalComputeLogManager",
    "MAX_RETRIES_TAG",
    "RemoteInstigatorOrigin",
    "RemoteJob",
    "RemoteRepository",
    "RemoteRepositoryOrigin",
    "RemoteSchedule",
    "ResumeRunContext",
    "RunLauncher",
    "ScheduleInstigatorData",
    "SqliteEventLogStorage",
    "WorkerStatus",
    "WorkspaceFileTarget",
    "WorkspaceProcessContext",
    "_execute_run_command_body",
    "execute_run",
    "is_valid_cron_schedule",
    "pack_value",
    "recon_job_from_origin",
    "unpack_value",
]
