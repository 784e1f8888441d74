"""Issue 28 point 7: the sample outputs in docs/operations.md count what the program counts.

The doctor sample said 27 settings and 9 schedules, and the status table listed 9 tasks, while
the program prints 32, 11 and 11. Counts that come from the registry and the settings table
are checked here; the daemon count comes from Dagster and is not.
"""

from __future__ import annotations

import re

from tests.support.dagster_stack import REPO_ROOT
from validibot.core.settings_check import SETTINGS
from validibot.tasks.registry import BACKEND_DAGSTER, get_tasks_for_backend

DOC = (REPO_ROOT / "docs" / "operations.md").read_text(encoding="utf-8")


def _number(pattern: str) -> int:
    match = re.search(pattern, DOC, re.MULTILINE)
    assert match, pattern
    return int(match.group(1))


def test_the_doctor_sample_counts_settings_schedules_and_tasks_as_doctor_does():
    scheduled = get_tasks_for_backend(BACKEND_DAGSTER)
    assert _number(r"^settings\s+ok\s+(\d+) VALIDIBOT_\* variables valid$") == len(SETTINGS)
    assert _number(r"^schedules\s+ok\s+(\d+) schedules match the registry$") == len(scheduled)
    fresh = _number(r"^task_health\s+ok\s+(\d+) fresh by")
    unjudged = _number(r"^task_health\s+ok\s+\d+ fresh by .*?, (\d+) not judged yet$")
    assert fresh + unjudged == len(scheduled)


def test_the_status_table_sample_lists_every_scheduled_task_in_order():
    block = DOC[DOC.index("\ntask                         health") :]
    block = block[: block.index("```")]
    rows = [line.split()[0] for line in block.strip().splitlines()[1:]]
    assert rows == [t.id for t in get_tasks_for_backend(BACKEND_DAGSTER)]
