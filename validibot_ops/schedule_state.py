"""Schedule states read and changed on the Dagster instance directly (no webserver needed).

``validibot-ops sync-schedules`` uses this where the daemon runs: it loads the code
locations of a workspace file (the same file the daemon and webserver load, so schedule
selectors and location names match), reads each schedule's state from the instance's
schedule storage, and starts/stops schedules through ``DagsterInstance``. The plan itself is
``validibot.tasks.sync_plan``, shared with ``manage.py sync_schedules`` (GraphQL).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import dagster as dg

from validibot.tasks.policies import paused_reasons
from validibot.tasks.registry import BACKEND_DAGSTER, get_tasks, get_tasks_for_backend
from validibot.tasks.sync_plan import (
    RUNNING,
    STOPPED,
    ObservedSchedule,
    SchedulePlan,
    apply_plan,
    plan_schedules,
)
from validibot_ops.dagster_internals import (
    RemoteSchedule,
    WorkspaceFileTarget,
    WorkspaceProcessContext,
)
from validibot_ops.paths import DEFAULT_LOCAL_HOME
from validibot_ops.policies import failure_policy_cursor
from validibot_ops.schedules import applied_overrides
from validibot_ops.tags import OVERRIDE_TAG, TASK_TAG

DEFAULT_WORKSPACE = Path(__file__).resolve().parent.parent / "workspace.local.yaml"


class ScheduleStateError(RuntimeError):
    """A code location of the workspace failed to load, or a schedule is unknown."""


def use_instance(workspace: Sequence[Path] = ()) -> str | None:
    """Point ``DAGSTER_HOME`` at the instance to work on; the problem in one line, or ``None``.

    Unset: the local instance `dev` serves (``.dagster_home``), if it exists. A home that is
    not a directory, or holds no ``dagster.yaml``, is refused before Dagster sees it: Dagster
    would print a traceback for the first, and for the second quietly create an empty
    instance, find every schedule "in sync" and exit 0. A workspace file must exist.
    """
    home = os.environ.get("DAGSTER_HOME", "").strip()
    if not home and DEFAULT_LOCAL_HOME.is_dir():
        os.environ["DAGSTER_HOME"] = home = str(DEFAULT_LOCAL_HOME)
    missing = [str(p) for p in workspace if not Path(p).is_file()]
    if missing:
        return f"workspace file {missing[0]} does not exist (default: {DEFAULT_WORKSPACE})"
    if not home:
        return (
            "DAGSTER_HOME is not set and there is no local instance yet "
            f"({DEFAULT_LOCAL_HOME}): run `validibot-ops dev` once, or export DAGSTER_HOME"
        )
    if not Path(home).is_dir():
        return f"DAGSTER_HOME={home} is not a directory: point it at the Dagster instance's home"
    if not (Path(home) / "dagster.yaml").is_file():
        return (
            f"DAGSTER_HOME={home} holds no dagster.yaml, so it is no instance this project "
            f"runs (nothing was changed); the local one is {DEFAULT_LOCAL_HOME}"
        )
    return None


class InstanceSchedules:
    """The workspace's schedules and their states on one Dagster instance."""

    def __init__(self, instance: dg.DagsterInstance, schedules: dict[str, RemoteSchedule]):
        self.instance = instance
        self.remote = schedules

    def status(self, name: str) -> str:
        schedule = self._get(name)
        stored = self.instance.get_instigator_state(
            schedule.get_remote_origin_id(), schedule.selector_id
        )
        return RUNNING if schedule.get_current_instigator_state(stored).is_running else STOPPED

    def observed(self) -> dict[str, ObservedSchedule]:
        paused = paused_reasons(failure_policy_cursor(self.instance))
        return {
            name: ObservedSchedule(
                name=name,
                status=self.status(name),
                default_status=schedule.default_status.value,
                cron=schedule.cron_schedule if isinstance(schedule.cron_schedule, str) else None,
                override=schedule.tags.get(OVERRIDE_TAG, ""),
                paused_reason=paused.get(schedule.tags.get(TASK_TAG, ""), ""),
            )
            for name, schedule in self.remote.items()
        }

    def start(self, name: str) -> None:
        self.instance.start_schedule(self._get(name))

    def stop(self, name: str) -> None:
        schedule = self._get(name)
        self.instance.stop_schedule(schedule.get_remote_origin_id(), schedule.selector_id, schedule)

    def _get(self, name: str) -> RemoteSchedule:
        try:
            return self.remote[name]
        except KeyError:
            raise ScheduleStateError(f"no schedule named {name!r} in the workspace") from None


@contextlib.contextmanager
def instance_schedules(
    instance: dg.DagsterInstance, workspace: Sequence[Path] = (DEFAULT_WORKSPACE,)
) -> Iterator[InstanceSchedules]:
    """Load the workspace's code locations (code servers are stopped on exit)."""
    target = WorkspaceFileTarget(paths=[str(p) for p in workspace])
    with WorkspaceProcessContext(instance, target) as context:
        request = context.create_request_context()
        schedules: dict[str, RemoteSchedule] = {}
        for name, entry in request.get_code_location_entries().items():
            if entry.code_location is None:
                error = entry.load_error.message if entry.load_error else "not loaded"
                raise ScheduleStateError(f"code location {name!r} failed to load: {error}")
            for repository in entry.code_location.get_repositories().values():
                schedules.update({s.name: s for s in repository.get_schedules()})
        yield InstanceSchedules(instance, schedules)


def plan_for(schedules: InstanceSchedules) -> SchedulePlan:
    """The sync plan for the instance's schedules against the registry and overrides."""
    tasks = get_tasks_for_backend(BACKEND_DAGSTER)
    overrides = applied_overrides(get_tasks()).active  # as the code location applies it
    return plan_schedules(tasks, schedules.observed(), overrides)


def sync(schedules: InstanceSchedules, plan: SchedulePlan) -> list[str]:
    """Apply the plan's starts and stops; one line per change."""
    return apply_plan(plan, schedules.start, schedules.stop)
