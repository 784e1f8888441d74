"""``validibot-ops demo``: every job launched once as a real run of the local code location.

The runs are created the way ``dagster job launch`` creates them (from the code location that
``workspace.local.yaml`` loads, so each run carries its remote origin and the repository tag
the UI filters on) and then executed in this process with ``execute_run``, the call a run
worker makes. They therefore show on each job's Runs tab, the jobs list and the Overview
timeline, and Re-execute works on them once ``validibot-ops dev`` serves the same location.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from validibot.tasks.registry import BACKEND_DAGSTER, get_tasks_for_backend
from validibot_ops.dagster_internals import (
    CodeLocation,
    RemoteJob,
    RemoteRepository,
    WorkspaceFileTarget,
    WorkspaceProcessContext,
    execute_run,
    recon_job_from_origin,
)
from validibot_ops.tags import TRIGGER_TAG

LOCAL_WORKSPACE = Path(__file__).resolve().parent.parent / "workspace.local.yaml"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
_NOT_COUNTS = frozenset({"status", "dry_run", "duration_s"})


@dataclass(frozen=True)
class DemoRun:
    """One row of the demo's table."""

    job: str
    status: str
    counts: str
    run_id: str

    @property
    def succeeded(self) -> bool:
        return self.status == dg.DagsterRunStatus.SUCCESS.value


@contextlib.contextmanager
def local_repository(
    instance: dg.DagsterInstance, workspace: Path = LOCAL_WORKSPACE
) -> Iterator[tuple[CodeLocation, RemoteRepository]]:
    """The workspace file's single code location and repository (its code server stops on exit)."""
    target = WorkspaceFileTarget(paths=[str(workspace)])
    with WorkspaceProcessContext(instance, target, code_server_log_level="WARNING") as ctx:
        entries = ctx.create_request_context().get_code_location_entries()
        (name, entry), *others = entries.items()
        if others or entry.code_location is None:
            error = entry.load_error.message if entry.load_error else "expected one location"
            raise RuntimeError(f"{workspace}: code location {name!r} did not load: {error}")
        (repository,) = entry.code_location.get_repositories().values()
        yield entry.code_location, repository


def create_run(
    instance: dg.DagsterInstance,
    location: CodeLocation,
    repository: RemoteRepository,
    job: RemoteJob,
    tags: Mapping[str, str],
    run_config: Mapping[str, Any],
) -> dg.DagsterRun:
    """A NOT_STARTED run of ``job`` with its remote and code origins (as ``job launch`` makes)."""
    plan = location.get_execution_plan(
        job, run_config, step_keys_to_execute=None, known_state=None, instance=instance
    ).execution_plan_snapshot
    return instance.create_run(
        job_name=job.name,
        run_id=None,
        run_config=run_config,
        resolved_op_selection=None,
        step_keys_to_execute=plan.step_keys_to_execute,
        status=None,
        op_selection=None,
        root_run_id=None,
        parent_run_id=None,
        tags={**job.tags, **tags},
        job_snapshot=job.job_snapshot,
        execution_plan_snapshot=plan,
        parent_job_snapshot=job.parent_job_snapshot,
        remote_job_origin=job.get_remote_origin(),
        job_code_origin=job.get_python_origin(),
        asset_selection=None,
        asset_check_selection=None,
        asset_graph=repository.asset_graph,
    )


def _counts(instance: dg.DagsterInstance, run_id: str) -> str:
    """The counts the op reported, in the command's order (from the run's step output)."""
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_OUTPUT):
        data = record.dagster_event.event_specific_data if record.dagster_event else None
        metadata = getattr(data, "metadata", None) or {}
        shown = [f"{k}={v.value}" for k, v in metadata.items() if k not in _NOT_COUNTS]
        return ", ".join(shown) or "-"
    return "-"


def run_every_job(instance: dg.DagsterInstance) -> list[DemoRun]:
    """Launch each scheduled task's job once, tagged ``validibot/trigger=demo``."""
    # One per task Dagster schedules: a gcp-only task has a job (for its HTTP trigger) but is
    # not part of this deployment's maintenance.
    # A task whose command needs the webserver is left out: the demo runs without one.
    scheduled = {t.id for t in get_tasks_for_backend(BACKEND_DAGSTER)} - set(left_out())
    rows = []
    with local_repository(instance) as (location, repository):
        for job in sorted(repository.get_all_jobs(), key=lambda j: j.name):
            if job.name not in scheduled:
                continue
            run = create_run(instance, location, repository, job, {TRIGGER_TAG: "demo"}, QUIET)
            assert run.job_code_origin is not None  # created from the workspace: it has one
            execute_run(recon_job_from_origin(run.job_code_origin), run, instance)
            finished = instance.get_run_by_id(run.run_id)
            status = finished.status.value if finished else "UNKNOWN"
            rows.append(DemoRun(job.name, status, _counts(instance, run.run_id), run.run_id[:8]))
    return rows


def render_table(rows: list[DemoRun]) -> str:
    """The README's table: task, status, rows affected, run id prefix."""
    header = ("task", "status", "rows affected", "run")
    cells = [header, *[(r.job, r.status, r.counts, r.run_id) for r in rows]]
    width = [max(len(row[i]) for row in cells) for i in range(4)]
    lines = [cells[0], tuple("-" * w for w in width), *cells[1:]]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, width, strict=True)).rstrip() for line in lines
    )


def left_out() -> list[str]:
    """The scheduled tasks the demo does not run: their commands need Dagster's webserver."""
    return sorted(t.id for t in get_tasks_for_backend(BACKEND_DAGSTER) if t.needs_webserver)
