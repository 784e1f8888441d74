"""Follow docs/adding-a-task.md literally: write its files, run its commands."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "adding-a-task.md"
FILE_BLOCK = re.compile(r"<!-- file: (?P<path>\S+) -->\n```python\n(?P<body>.*?)```", re.DOTALL)
RUN_BLOCK = re.compile(r"<!-- run -->\n```bash\n(?P<body>.*?)```", re.DOTALL)

pytestmark = [pytest.mark.subprocess, pytest.mark.timeout(300)]


def _write_files_and_scripts(tmp_path: Path) -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    files = list(FILE_BLOCK.finditer(text))
    assert len(files) >= 14
    for block in files:
        target = tmp_path / "pkg" / block["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block["body"], encoding="utf-8")
    return [m["body"] for m in RUN_BLOCK.finditer(text)]


def _run(script: str, tmp_path: Path) -> str:

    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DAGSTER_", "VALIDIBOT_", "DJANGO_", "CELERY_"))
        and key not in {"REDIS_URL", "DATABASE_URL"}
    }
    env.update(
        {
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
            "PYTHONPATH": os.pathsep.join([str(tmp_path / "pkg"), str(ROOT)]),
            "DAGSTER_HOME": str(tmp_path / "dagster_home"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "VALIDIBOT_MEDIA_ROOT": str(tmp_path / "media"),
        }
    )
    # The reader's DAGSTER_HOME is an instance (the local one `validibot-ops dev` creates).
    (tmp_path / "dagster_home").mkdir(exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster_home" / "dagster.yaml")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return output


def test_both_downstream_examples_work_as_written(tmp_path):
    """Upstream's shape first (a package written for upstream Validibot), then ours."""
    upstream, ours = _write_files_and_scripts(tmp_path)

    output = _run(upstream, tmp_path)
    assert '"id": "purge-acme-reports"' in output
    assert '"celery_task": "acme.purge_acme_reports"' in output
    assert "Validation successful" in output
    assert "running Celery task acme.purge_acme_reports in-process" in output
    assert "Deleted 0 report key(s)." in output
    assert "RUN_SUCCESS" in output or "Finished execution of run" in output

    output = _run(ours, tmp_path)
    assert '"task": "expire_acme_upload_keys"' in output
    assert '"dry_run": true' in output
    assert "Validation successful" in output
    assert "RUN_SUCCESS" in output or "Finished execution of run" in output
