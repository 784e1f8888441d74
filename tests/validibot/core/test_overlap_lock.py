"""The per-task lock and the overlap policy: every task takes it but ``allow`` ones."""

from __future__ import annotations

import pytest

from tests.validibot.core.test_locks import held_elsewhere
from validibot.core.runner import run_task_command
from validibot.tasks.registry import MaintenanceTask, register


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("policy", "status"),
    [("skip", "busy"), ("buffer_one", "busy"), ("allow", "completed")],
)
def test_only_allow_tasks_run_beside_a_held_lock(policy, status):
    """A second execution while the first holds the lock: ``busy`` (changes nothing) unless
    the registry allows overlap. A buffered run never meets a held lock in practice: the run
    queue starts it only after the first run ended (tests/validibot_ops/test_policies.py)."""
    register(
        MaintenanceTask(
            id="noop_task",
            name="Noop",
            command="noop_task",
            cron="0 * * * *",
            overlap_policy=policy,
        )
    )
    with held_elsewhere("noop_task"):
        summary = run_task_command("noop_task")
    assert summary["status"] == status
    assert summary["counts"]["noop"] == (1 if status == "completed" else 0)
