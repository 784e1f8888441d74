"""``doctor``'s task-health check: Dagster's verdicts, summarised, never recomputed.

It reads what ``scheduled_task_status`` reads (``DagsterClient.asset_health``: the freshness
daemon's verdict on each task's asset and the latest result of each asset check), names each
task's state with :func:`validibot.tasks.health.task_state` and reports:

- ``FAIL``: a task is late (its schedule running), or an asset check failed at ERROR severity;
- ``warn``: an asset check failed at WARN severity;
- ``ok`` otherwise, counting the tasks judged fresh and not yet judged.
"""

from __future__ import annotations

from collections import Counter

from validibot.operations.dagster_client import DagsterClient, DagsterClientError
from validibot.tasks.health import HEALTHY, LATE, NEVER_RUN, PENDING, task_state
from validibot.tasks.registry import BACKEND_DAGSTER, get_tasks_for_backend

OK, WARN, FAIL = "ok", "warn", "FAIL"


def check_task_health(client: DagsterClient) -> tuple[str, str]:
    """``(status, detail)`` for the doctor table (statuses as the doctor spells them)."""
    tasks = get_tasks_for_backend(BACKEND_DAGSTER)
    try:
        schedules = client.schedules()
        health = client.asset_health([t.id for t in tasks])
    except DagsterClientError as exc:
        return FAIL, f"{exc}; task health is Dagster's freshness verdict, none without it"
    late, errors, warnings = [], [], []
    states: Counter[str] = Counter()
    for task in tasks:
        verdict = health.get(task.id)
        schedule = schedules.get(task.schedule_name)
        state = task_state(
            enabled=task.enabled,
            schedule_running=schedule is not None and schedule.status == "RUNNING",
            freshness=verdict.freshness if verdict else None,
            last_run_status=None,  # run failures alert on their own; doctor judges freshness
        )
        late += [task.id] if state == LATE else []
        states[state] += 1
        for check in verdict.checks if verdict else ():
            if check.failed:
                name = f"{task.id}:{check.name}"
                (errors if check.severity == "ERROR" else warnings).append(name)
    if late or errors:
        parts = [f"late: {', '.join(late)}"] if late else []
        parts += [f"failed checks: {', '.join(errors)}"] if errors else []
        return FAIL, "; ".join(parts) + " (see manage.py scheduled_task_status)"
    if warnings:
        return WARN, f"checks at WARN: {', '.join(warnings)}"
    shown = {HEALTHY, NEVER_RUN, PENDING}
    others = ", ".join(f"{n} {s}" for s, n in sorted(states.items()) if s not in shown)
    return OK, (
        f"{states[HEALTHY]} fresh by Dagster's freshness policies, "
        f"{states[NEVER_RUN] + states[PENDING]} not judged yet" + (f"; {others}" if others else "")
    )
