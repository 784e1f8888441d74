"""Issue 28 point 7: the sync plan against the schedules the real code location declares.

The outcome-checks schedule is the code location's own (no registry task owns it): it is not
"not in the registry". A schedule with both a change and drift counts once.
"""

from __future__ import annotations

import json

import dagster as dg

from validibot.tasks.overrides import OVERRIDES_ENV, load_overrides
from validibot.tasks.registry import BACKEND_DAGSTER, get_tasks, get_tasks_for_backend
from validibot.tasks.sync_plan import RUNNING, STOPPED, ObservedSchedule, plan_schedules
from validibot.tasks.vocabulary import GENERATED_SCHEDULES, OVERRIDE_TAG, TASK_TAG
from validibot_ops.definitions import build_definitions


def _observed(defs: dg.Definitions, running: set[str] = frozenset()) -> dict:
    """Every loaded schedule at its default state, or RUNNING as stored for ``running``."""
    return {
        s.name: ObservedSchedule(
            s.name,
            RUNNING
            if s.name in running or s.default_status == dg.DefaultScheduleStatus.RUNNING
            else STOPPED,
            s.default_status.value,
            str(s.cron_schedule),
            s.tags.get(OVERRIDE_TAG, ""),
        )
        for s in defs.schedules
    }


def test_the_code_locations_own_schedules_are_known_to_the_plan():
    defs = build_definitions()
    generated = {s.name for s in defs.schedules if TASK_TAG not in s.tags}
    assert generated == set(GENERATED_SCHEDULES)
    tasks = get_tasks_for_backend(BACKEND_DAGSTER)
    plan = plan_schedules(tasks, _observed(defs))
    assert plan.extra == ()
    assert "not in the registry" not in plan.render()
    assert plan.summary().startswith(f"{len(tasks)} schedules: {len(tasks)} in sync")


def test_with_overrides_active_each_schedule_is_counted_once(tmp_path, monkeypatch):
    path = tmp_path / "overrides.json"
    path.write_text(
        json.dumps(
            {
                "clear_sessions": {"enabled": False, "reason": "INC-1", "author": "a"},
                "purge_expired_submissions": {"cron": "45 5 * * *", "reason": "r", "author": "b"},
            }
        )
    )
    monkeypatch.setenv(OVERRIDES_ENV, str(path))
    defs = build_definitions()
    tasks = get_tasks_for_backend(BACKEND_DAGSTER)
    overrides = load_overrides(known_ids={t.id for t in get_tasks()})
    # clear_sessions stored RUNNING under its enabled: false: a stop and override drift.
    plan = plan_schedules(tasks, _observed(defs, {"clear_sessions_schedule"}), overrides)
    assert [c.schedule_name for c in plan.changes] == ["clear_sessions_schedule"]
    assert {d.schedule_name for d in plan.drift} >= {"clear_sessions_schedule"}
    assert plan.summary().startswith(f"{len(tasks)} schedules: ")
