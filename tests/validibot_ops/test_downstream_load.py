"""The code location with a downstream package: reached through the entry-point group, and
refusing to load, naming the task and the cause, when a registration is broken."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.dagster_stack import REPO_ROOT, VENV_BIN
from validibot.tasks.registry import BUILTIN_TASKS, ENTRY_POINT_GROUP, TASK_MODULES_ENV

pytestmark = pytest.mark.subprocess

SETTINGS = "tests.support.downstream.settings"
JOBS = (
    "import json; from django.apps import apps; from validibot_ops.definitions import defs; "
    "print(json.dumps({'django_ready': apps.ready, "
    "'jobs': sorted(j.name for j in defs.resolve_all_job_defs())}))"
)


def run(argv: list[str], pythonpath: str = "", **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("VALIDIBOT_", "DAGSTER_"))}
    clean.update(
        DJANGO_SETTINGS_MODULE=SETTINGS,
        PYTHONPATH=os.pathsep.join(p for p in (pythonpath, str(REPO_ROOT)) if p),
        DAGSTER_DISABLE_TELEMETRY="1",
        **env,
    )
    return subprocess.run(
        argv, cwd=REPO_ROOT, env=clean, capture_output=True, text=True, timeout=180, check=False
    )


def installed_distribution(root: Path) -> Path:
    """A downstream distribution as pip would leave it: metadata naming our entry point."""
    info = root / "validibot_downstream_example-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: validibot-downstream-example\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\ndownstream = tests.support.downstream.scheduled:register_tasks\n"
    )
    return root


def test_the_entry_point_group_gives_the_code_location_the_packages_job_without_django(
    tmp_path,
):
    result = run([sys.executable, "-c", JOBS], pythonpath=str(installed_distribution(tmp_path)))
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["django_ready"] is False
    assert {t.id for t in BUILTIN_TASKS} | {"purge_stale_reports"} <= set(loaded["jobs"])

    without = json.loads(run([sys.executable, "-c", JOBS]).stdout.strip().splitlines()[-1])
    assert set(loaded["jobs"]) - set(without["jobs"]) == {"purge_stale_reports"}


@pytest.mark.parametrize(
    ("mistake", "cause"),
    [
        ("bad_cron", "scheduled task 'purge-stale-reports': schedule_cron '61 * * * *' does not"),
        (
            "unknown_celery_task",
            "scheduled task 'purge-stale-reports': celery_task 'downstream.no_such_task' is not",
        ),
        ("duplicate_id", "Scheduled admin task already registered: purge-stale-reports"),
    ],
)
def test_a_broken_registration_fails_the_code_locations_load_naming_it(mistake, cause):
    result = run(
        [str(VENV_BIN / "dagster"), "definitions", "validate", "-m", "validibot_ops.definitions"],
        **{TASK_MODULES_ENV: f"tests.support.downstream.broken:{mistake}"},
    )
    assert result.returncode != 0
    assert cause in result.stdout + result.stderr, (result.stdout + result.stderr)[-3000:]
