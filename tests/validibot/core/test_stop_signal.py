"""SIGTERM to a shell run of a purge: it finishes the batch in hand, reports stopped, exits 1."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from validibot.core.maintenance import parse_summary

pytestmark = pytest.mark.services

ROOT = Path(__file__).resolve().parents[3]
SCALE = 300  # seed_demo_data: 10 expired submissions per unit, so 3,000 due rows


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "VALIDIBOT_MEDIA_ROOT": str(tmp_path / "media"),
        "PYTHONUNBUFFERED": "1",  # progress lines arrive as they are written
    }


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True
    )


def test_sigterm_stops_a_purge_after_the_current_batch(tmp_path: Path):
    env = _env(tmp_path)
    _manage(env, "migrate", "--verbosity", "0")
    _manage(env, "seed_demo_data", "--scale", str(SCALE), "--no-files")
    argv = [sys.executable, "manage.py", "purge_expired_submissions", "--batch-size", "1"]
    argv += ["--max-batches", "0"]
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while not any(line.startswith("batch 1:") for line in lines):
        line = proc.stdout.readline()
        assert line and time.monotonic() < deadline, f"no first batch: {lines}"
        lines.append(line)

    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)

    summary = parse_summary("".join(lines) + out)
    assert proc.returncode == 1, err[-2000:]
    assert summary["status"] == "stopped" and summary["reason"] == "received SIGTERM"
    assert "stopped: received SIGTERM" in err
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        purged = db.execute(
            "SELECT count(*) FROM submissions_submission WHERE content_purged_at IS NOT NULL"
        ).fetchone()[0]
        half_done = db.execute(
            "SELECT count(*) FROM submissions_submission"
            " WHERE content_purged_at IS NULL AND content = ''"
        ).fetchone()[0]
    assert purged == summary["counts"]["purged"] == summary["counts"]["batches"]
    assert 0 < purged < 10 * SCALE, "stopped part-way, after committed batches only"
    assert half_done == 0
