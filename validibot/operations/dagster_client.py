"""A small client for the Dagster webserver's GraphQL API, in plain HTTP + JSON.

Django code never imports Dagster, so this speaks to ``<VALIDIBOT_DAGSTER_URL>/graphql``
with the standard library only. It launches a task's job, waits for the run, reads the
summary counts the op reported, lists a task's recent runs and starts/stops schedules::

    client = DagsterClient()                      # settings.VALIDIBOT_DAGSTER_URL
    run_id = client.launch_task("clear_sessions", trigger="graphql")
    run = client.wait_for_run(run_id, timeout=120)
    client.run_summary(run_id)                    # {"status": "success", "deleted": 3, ...}
    client.stop_schedule("clear_sessions_schedule")

The repository and code location of a job or schedule are discovered (``repositoriesOrError``)
rather than hard-coded; every supported entry point (``validibot-ops dev``,
``workspace.local.yaml``, ``workspace.yaml``) names the location ``validibot_ops``.

With the production ``QueuedRunCoordinator`` a launched run stays ``QUEUED`` until
``dagster-daemon`` dequeues it.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from validibot.tasks.vocabulary import (
    ASSET_PREFIX,
    FINISHED_STATUSES,
    OVERRIDE_PROBLEM_TAG,
    OVERRIDE_TAG,
    TASK_TAG,
    TRIGGER_TAG,
)

DEFAULT_URL = "http://127.0.0.1:3000"


class DagsterClientError(Exception):
    """Base class of every error this client raises."""


class DagsterUnavailable(DagsterClientError):  # noqa: N818  (the name reads as the condition)
    """The webserver did not answer (down, wrong URL, timeout, or a 5xx response)."""


class JobNotFound(DagsterClientError):  # noqa: N818
    """No loaded code location has a job with this name."""


class ScheduleNotFound(DagsterClientError):  # noqa: N818
    """No loaded code location has a schedule with this name."""


class GraphQLError(DagsterClientError):
    """The webserver answered with a GraphQL or Python error; the message is Dagster's."""


class RunNotFound(DagsterClientError):  # noqa: N818
    """The webserver's instance has no run with this id."""


class RunTimeout(DagsterClientError):  # noqa: N818
    """A run did not finish before the deadline (it goes on running)."""


@dataclass(frozen=True)
class Location:
    """Where a job or schedule lives: code location name and repository name."""

    location: str
    repository: str


@dataclass(frozen=True)
class RunInfo:
    """A run as the webserver reports it (times are Unix timestamps)."""

    run_id: str
    job_name: str
    status: str
    tags: Mapping[str, str] = field(default_factory=dict)
    creation_time: float | None = None
    start_time: float | None = None
    end_time: float | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def duration_s(self) -> float | None:
        if self.start_time is None or self.end_time is None:
            return None
        return self.end_time - self.start_time


@dataclass(frozen=True)
class ScheduleInfo:
    """A schedule and its current state (``status`` is RUNNING or STOPPED)."""

    name: str
    job_name: str
    status: str
    default_status: str
    cron: str
    timezone: str | None
    state_id: str
    location: Location
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def override(self) -> str:
        """The incident override applied by the code location, or ``""``."""
        return self.tags.get(OVERRIDE_TAG, "")

    @property
    def override_problem(self) -> str:
        """Why the code location refused this schedule's overrides entry, or ``""``."""
        return self.tags.get(OVERRIDE_PROBLEM_TAG, "")


_RUN_FIELDS = """
  runId jobName status creationTime startTime endTime
  tags { key value }
"""

_SCHEDULE_FIELDS = """
  name pipelineName cronSchedule executionTimezone defaultStatus
  tags { key value }
  scheduleState { id status }
"""

_REPOSITORIES_QUERY = """
query ValidibotRepositories {
  repositoriesOrError {
    __typename
    ... on RepositoryConnection {
      nodes { name location { name } jobs { name } schedules { %s } }
    }
    ... on PythonError { message }
  }
}
""".replace("%s", _SCHEDULE_FIELDS)

_LAUNCH_MUTATION = """
mutation ValidibotLaunchRun($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PipelineNotFoundError { message }
    ... on Error { message }
  }
}
"""

_RUN_QUERY = """
query ValidibotRun($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { %s }
    ... on Error { message }
  }
}
""".replace("%s", _RUN_FIELDS)

_RUNS_QUERY = """
query ValidibotRuns($filter: RunsFilter, $limit: Int) {
  runsOrError(filter: $filter, limit: $limit) {
    __typename
    ... on Runs { results { %s } }
    ... on Error { message }
  }
}
""".replace("%s", _RUN_FIELDS)

_METADATA_FIELDS = """
  metadataEntries {
    __typename label
    ... on IntMetadataEntry { intValue intRepr }
    ... on FloatMetadataEntry { floatValue floatRepr }
    ... on BoolMetadataEntry { boolValue }
    ... on TextMetadataEntry { text }
    ... on JsonMetadataEntry { jsonString }
  }
"""

_EVENTS_QUERY = """
query ValidibotRunEvents($runId: ID!, $cursor: String) {
  runOrError(runId: $runId) {
    __typename
    ... on Run {
      eventConnection(afterCursor: $cursor, limit: 500) {
        cursor hasMore
        events {
          __typename
          ... on ExecutionStepOutputEvent { stepKey %s }
          ... on MaterializationEvent { stepKey %s }
          ... on ExecutionStepFailureEvent { stepKey error { message } }
          ... on ExecutionStepUpForRetryEvent { stepKey error { message } }
        }
      }
    }
    ... on Error { message }
  }
}
""".replace("%s", _METADATA_FIELDS)

_SENSOR_CURSORS_QUERY = """
query ValidibotSensorCursors {
  repositoriesOrError {
    __typename
    ... on RepositoryConnection {
      nodes { sensors { name sensorState { typeSpecificData {
        __typename ... on SensorData { lastCursor }
      } } } }
    }
    ... on PythonError { message }
  }
}
"""

_START_SCHEDULE = """
mutation ValidibotStartSchedule($selector: ScheduleSelector!) {
  startSchedule(scheduleSelector: $selector) {
    __typename
    ... on ScheduleStateResult { scheduleState { id status } }
    ... on Error { message }
    ... on UnauthorizedError { message }
  }
}
"""

_STOP_SCHEDULE = """
mutation ValidibotStopSchedule($id: String!) {
  stopRunningSchedule(id: $id) {
    __typename
    ... on ScheduleStateResult { scheduleState { id status } }
    ... on Error { message }
    ... on UnauthorizedError { message }
  }
}
"""

_RELOAD_LOCATION = """
mutation ValidibotReloadLocation($name: String!) {
  reloadRepositoryLocation(repositoryLocationName: $name) {
    __typename
    ... on WorkspaceLocationEntry {
      locationOrLoadError { __typename ... on PythonError { message } }
    }
    ... on Error { message }
    ... on UnauthorizedError { message }
  }
}
"""


_ASSET_HEALTH_QUERY = """
query ValidibotAssetHealth($keys: [AssetKeyInput!]) {
  assetNodes(assetKeys: $keys) {
    assetKey { path }
    internalFreshnessPolicy {
      __typename
      ... on TimeWindowFreshnessPolicy { failWindowSeconds }
    }
    freshnessStatusInfo {
      freshnessStatus
      freshnessStatusMetadata { lastMaterializedTimestamp }
    }
    assetChecksOrError {
      __typename
      ... on AssetChecks {
        checks {
          name
          executionForLatestMaterialization {
            status timestamp
            evaluation { severity description }
          }
        }
      }
    }
  }
}
"""


@dataclass(frozen=True)
class CheckResult:
    """An asset check's latest execution on a task's asset, as Dagster reports it.

    ``status`` is ``SUCCEEDED``, ``FAILED``, ``IN_PROGRESS``, ``SKIPPED``, ``EXECUTION_FAILED``
    or ``None`` (never executed against the latest materialization); ``severity`` is ``WARN``
    or ``ERROR``.
    """

    name: str
    status: str | None
    severity: str | None = None
    description: str | None = None

    @property
    def failed(self) -> bool:
        return self.status in {"FAILED", "EXECUTION_FAILED"}


@dataclass(frozen=True)
class AssetHealth:
    """Dagster's verdicts on one task's asset: freshness (from the freshness daemon) and checks.

    ``freshness`` is GraphQL's ``AssetHealthStatus`` name: ``HEALTHY``, ``WARNING``,
    ``DEGRADED`` (late), ``UNKNOWN`` (never materialized, or not judged yet) or
    ``NOT_APPLICABLE`` (no freshness policy: the task is not scheduled).
    """

    task_id: str
    freshness: str
    fail_window_s: int | None = None
    last_materialized_at: float | None = None
    checks: tuple[CheckResult, ...] = ()


def _asset_health(raw: Mapping[str, Any]) -> AssetHealth:
    policy = raw.get("internalFreshnessPolicy") or {}
    info = raw.get("freshnessStatusInfo") or {}
    meta = info.get("freshnessStatusMetadata") or {}
    checks_raw = raw.get("assetChecksOrError") or {}
    checks = []
    for check in checks_raw.get("checks") or ():
        execution = check.get("executionForLatestMaterialization") or {}
        evaluation = execution.get("evaluation") or {}
        checks.append(
            CheckResult(
                name=check["name"],
                status=execution.get("status"),
                severity=evaluation.get("severity"),
                description=evaluation.get("description"),
            )
        )
    return AssetHealth(
        task_id=raw["assetKey"]["path"][-1],
        freshness=info.get("freshnessStatus") or "NOT_APPLICABLE",
        fail_window_s=policy.get("failWindowSeconds"),
        last_materialized_at=meta.get("lastMaterializedTimestamp"),
        checks=tuple(checks),
    )


def _tags(raw: Sequence[Mapping[str, str]] | None) -> dict[str, str]:
    return {t["key"]: t["value"] for t in raw or ()}


def _run(raw: Mapping[str, Any]) -> RunInfo:
    return RunInfo(
        run_id=raw["runId"],
        job_name=raw["jobName"],
        status=raw["status"],
        tags=_tags(raw.get("tags")),
        creation_time=raw.get("creationTime"),
        start_time=raw.get("startTime"),
        end_time=raw.get("endTime"),
    )


def _metadata_value(entry: Mapping[str, Any]) -> Any:
    kind = entry["__typename"]
    if kind == "IntMetadataEntry":
        return entry["intValue"] if entry["intValue"] is not None else int(entry["intRepr"])
    if kind == "FloatMetadataEntry":
        return entry["floatValue"] if entry["floatValue"] is not None else entry["floatRepr"]
    if kind == "BoolMetadataEntry":
        return entry["boolValue"]
    if kind == "JsonMetadataEntry":
        return json.loads(entry["jsonString"])
    return entry.get("text")


def metadata_dict(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """GraphQL metadata entries as ``{label: python value}``."""
    return {entry["label"]: _metadata_value(entry) for entry in entries}


class DagsterClient:
    """Plain-HTTP client for one Dagster webserver.

    Args:
        base_url: the webserver's root URL; defaults to ``settings.VALIDIBOT_DAGSTER_URL``
            (``http://127.0.0.1:3000`` when Django is not configured).
        timeout: seconds to wait for each HTTP request.

    Raises (from every method): :class:`DagsterUnavailable` when the webserver does not
    answer, :class:`GraphQLError` when it answers with an error.
    """

    def __init__(self, base_url: str | None = None, timeout: float = 15.0) -> None:
        self.base_url = (base_url or _configured_url()).rstrip("/")
        self.timeout = timeout

    # -- transport ----------------------------------------------------------------------
    def execute(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST one GraphQL document; return its ``data`` or raise a clear error."""
        body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
        request = urllib.request.Request(  # noqa: S310  (the URL is the operator's setting)
            f"{self.base_url}/graphql",
            data=body,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                payload = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            payload = self._error_payload(exc)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DagsterUnavailable(
                f"Dagster webserver at {self.base_url} is unreachable: {reason}"
            ) from exc
        except json.JSONDecodeError as exc:
            raise DagsterUnavailable(
                f"Dagster webserver at {self.base_url} did not answer with JSON "
                "(is this the webserver's URL?)"
            ) from exc
        if payload.get("errors"):
            messages = "; ".join(e.get("message", str(e)) for e in payload["errors"])
            raise GraphQLError(f"GraphQL error from {self.base_url}: {messages}")
        return payload.get("data") or {}

    def _error_payload(self, exc: urllib.error.HTTPError) -> dict[str, Any]:
        if exc.code >= 500:
            raise DagsterUnavailable(
                f"Dagster webserver at {self.base_url} answered HTTP {exc.code}"
            ) from exc
        try:
            return json.loads(exc.read() or b"{}")
        except json.JSONDecodeError:
            raise GraphQLError(
                f"Dagster webserver at {self.base_url} answered HTTP {exc.code} "
                "(is this the webserver's URL?)"
            ) from exc

    @staticmethod
    def _result(data: Mapping[str, Any], key: str, ok: str) -> dict[str, Any]:
        """The union field ``key`` if it is of type ``ok``, else a :class:`GraphQLError`."""
        result = data.get(key) or {}
        if result.get("__typename") != ok:
            kind = result.get("__typename", "no result")
            raise GraphQLError(f"{key}: {kind}: {result.get('message', '')}".rstrip(": "))
        return result

    # -- discovery ----------------------------------------------------------------------
    def repositories(self) -> list[dict[str, Any]]:
        """Every loaded repository with its location, job names and schedules."""
        data = self.execute(_REPOSITORIES_QUERY)
        return self._result(data, "repositoriesOrError", "RepositoryConnection")["nodes"]

    def find_job(self, job_name: str) -> Location:
        """The code location and repository that define ``job_name``."""
        for repo in self.repositories():
            if any(job["name"] == job_name for job in repo["jobs"]):
                return Location(repo["location"]["name"], repo["name"])
        raise JobNotFound(f"no job named {job_name!r} in any code location at {self.base_url}")

    # -- runs ---------------------------------------------------------------------------
    def launch_run(
        self,
        job_name: str,
        *,
        run_config: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Launch ``job_name`` and return the new run id (the run may stay QUEUED)."""
        where = self.find_job(job_name)
        params = {
            "selector": {
                "repositoryLocationName": where.location,
                "repositoryName": where.repository,
                "jobName": job_name,
            },
            "runConfigData": dict(run_config or {}),
            "executionMetadata": {
                "tags": [{"key": k, "value": str(v)} for k, v in (tags or {}).items()]
            },
        }
        data = self.execute(_LAUNCH_MUTATION, {"executionParams": params})
        result = data.get("launchRun") or {}
        kind = result.get("__typename")
        if kind == "LaunchRunSuccess":
            return result["run"]["runId"]
        if kind == "PipelineNotFoundError":
            raise JobNotFound(result.get("message") or f"no job named {job_name!r}")
        if kind == "RunConfigValidationInvalid":
            errors = "; ".join(e["message"] for e in result.get("errors", []))
            raise GraphQLError(f"run config rejected for {job_name}: {errors}")
        raise GraphQLError(f"launchRun {job_name}: {kind}: {result.get('message', '')}")

    def launch_task(
        self,
        task_id: str,
        *,
        trigger: str = "graphql",
        dry_run: bool = False,
        extra_args: Sequence[str] = (),
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Launch a registry task's job (named after the task) tagged with its trigger."""
        config: dict[str, Any] = {}
        if dry_run or extra_args:
            op_config = {"dry_run": dry_run, "extra_args": list(extra_args)}
            config = {"ops": {task_id: {"config": op_config}}}
        run_tags = {TASK_TAG: task_id, TRIGGER_TAG: trigger, **(tags or {})}
        return self.launch_run(task_id, run_config=config, tags=run_tags)

    def get_run(self, run_id: str) -> RunInfo:
        data = self.execute(_RUN_QUERY, {"runId": run_id})
        if (data.get("runOrError") or {}).get("__typename") == "RunNotFoundError":
            raise RunNotFound(f"no run {run_id!r} at {self.base_url}")
        return _run(self._result(data, "runOrError", "Run"))

    def wait_for_run(
        self, run_id: str, timeout: float = 300.0, poll_interval: float = 1.0
    ) -> RunInfo:
        """Poll until the run finishes (SUCCESS, FAILURE, CANCELED); :class:`RunTimeout` if not.

        A queued run only starts when ``dagster-daemon`` is running.
        """
        deadline = time.monotonic() + timeout
        while True:
            run = self.get_run(run_id)
            if run.finished:
                return run
            if time.monotonic() >= deadline:
                raise RunTimeout(f"run {run_id} still {run.status} after {timeout:.0f}s")
            time.sleep(poll_interval)

    def run_events(self, run_id: str) -> list[dict[str, Any]]:
        """The run's output, materialization and step-failure events (all pages)."""
        events: list[dict[str, Any]] = []
        cursor = None
        while True:
            data = self.execute(_EVENTS_QUERY, {"runId": run_id, "cursor": cursor})
            page = self._result(data, "runOrError", "Run")["eventConnection"]
            events += [e for e in page["events"] if len(e) > 1]
            if not page["hasMore"]:
                return events
            cursor = page["cursor"]

    def run_summary(self, run_id: str) -> dict[str, Any]:
        """The summary the task's op reported (status, dry_run, duration_s and its counts).

        Read from the metadata of the op's output and asset events; a failed run
        yields ``{"status": "failed", "error": <step failure message>}``; ``{}`` when the
        run has not reported yet.
        """
        summary: dict[str, Any] = {}
        errors: list[str] = []
        failed = False
        for event in self.run_events(run_id):
            kind = event["__typename"]
            if kind in {"ExecutionStepOutputEvent", "MaterializationEvent"}:
                summary.update(metadata_dict(event["metadataEntries"]))
            elif kind in {"ExecutionStepFailureEvent", "ExecutionStepUpForRetryEvent"}:
                message = (event.get("error") or {}).get("message", "").strip()
                errors += [message] if message and message not in errors else []
                failed = failed or kind == "ExecutionStepFailureEvent"
        if failed:
            # The attempts' own errors first; the final "Exceeded max_retries" last.
            summary.update({"status": "failed", "error": "; ".join(errors)})
        return summary

    def recent_runs(self, task_id: str, limit: int = 10) -> list[RunInfo]:
        """The task's latest runs, newest first, whatever started them."""
        return self.runs_tagged({TASK_TAG: task_id}, limit)

    def runs_tagged(self, tags: Mapping[str, str], limit: int = 10) -> list[RunInfo]:
        """The latest runs carrying every one of ``tags``, newest first."""
        run_filter = {"tags": [{"key": k, "value": v} for k, v in tags.items()]}
        data = self.execute(_RUNS_QUERY, {"filter": run_filter, "limit": limit})
        return [_run(r) for r in self._result(data, "runsOrError", "Runs")["results"]]

    def run_url(self, run_id: str, ui_base_url: str | None = None) -> str:
        """The run's page in the Dagster UI."""
        return f"{(ui_base_url or self.base_url).rstrip('/')}/runs/{run_id}"

    # -- health -------------------------------------------------------------------------
    def asset_health(self, task_ids: Sequence[str]) -> dict[str, AssetHealth]:
        """Dagster's freshness verdict and asset-check results for each task's asset.

        One query for every task. This is the health truth the alert sensor, the status
        command and ``doctor`` share: nothing here computes a verdict of its own.
        """
        keys = [{"path": [ASSET_PREFIX, task_id]} for task_id in task_ids]
        data = self.execute(_ASSET_HEALTH_QUERY, {"keys": keys})
        found = [_asset_health(raw) for raw in data.get("assetNodes") or ()]
        return {health.task_id: health for health in found}

    # -- schedules ----------------------------------------------------------------------
    def schedules(self) -> dict[str, ScheduleInfo]:
        """Every schedule of every loaded repository, by name, with its current state."""
        found: dict[str, ScheduleInfo] = {}
        for repo in self.repositories():
            where = Location(repo["location"]["name"], repo["name"])
            for raw in repo["schedules"]:
                found[raw["name"]] = ScheduleInfo(
                    name=raw["name"],
                    job_name=raw["pipelineName"],
                    status=raw["scheduleState"]["status"],
                    default_status=raw["defaultStatus"],
                    cron=raw["cronSchedule"],
                    timezone=raw.get("executionTimezone"),
                    state_id=raw["scheduleState"]["id"],
                    location=where,
                    tags=_tags(raw.get("tags")),
                )
        return found

    def sensor_cursor(self, name: str) -> str | None:
        """The cursor of the sensor called ``name`` (``None`` if unknown or never ticked)."""
        data = self.execute(_SENSOR_CURSORS_QUERY)
        result = self._result(data, "repositoriesOrError", "RepositoryConnection")
        for repo in result["nodes"]:
            for sensor in repo.get("sensors") or []:
                if sensor["name"] == name:
                    specific = (sensor.get("sensorState") or {}).get("typeSpecificData") or {}
                    return specific.get("lastCursor")
        return None

    def get_schedule(self, name: str) -> ScheduleInfo:
        schedule = self.schedules().get(name)
        if schedule is None:
            raise ScheduleNotFound(f"no schedule named {name!r} at {self.base_url}")
        return schedule

    def start_schedule(self, name: str) -> str:
        """Start a schedule (as the UI toggle does); returns the new status."""
        where = self.get_schedule(name).location
        selector = {
            "repositoryLocationName": where.location,
            "repositoryName": where.repository,
            "scheduleName": name,
        }
        data = self.execute(_START_SCHEDULE, {"selector": selector})
        result = self._result(data, "startSchedule", "ScheduleStateResult")
        return result["scheduleState"]["status"]

    def stop_schedule(self, name: str) -> str:
        """Stop a schedule; ``stopRunningSchedule`` needs the instigator state's id."""
        state_id = self.get_schedule(name).state_id
        data = self.execute(_STOP_SCHEDULE, {"id": state_id})
        result = self._result(data, "stopRunningSchedule", "ScheduleStateResult")
        return result["scheduleState"]["status"]

    def reload_location(self, location: str) -> None:
        """Reload a code location (re-reads the code, e.g. an edited overrides file)."""
        data = self.execute(_RELOAD_LOCATION, {"name": location})
        result = self._result(data, "reloadRepositoryLocation", "WorkspaceLocationEntry")
        loaded = result.get("locationOrLoadError") or {}
        if loaded.get("__typename") == "PythonError":
            raise GraphQLError(f"code location {location} failed to load: {loaded['message']}")


def _configured_url() -> str:
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        return getattr(settings, "VALIDIBOT_DAGSTER_URL", "") or DEFAULT_URL
    except ImproperlyConfigured:  # used outside a configured Django process
        return DEFAULT_URL
