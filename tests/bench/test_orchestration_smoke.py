"""bench/orchestration.py runs end to end in --quick mode and prints its ratio line; no timings."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WAYS = {
    "bare_celery",
    "dagster_cli_in_process",
    "execute_in_process",
    "dagster_cli_celery",
    "run_worker_celery",
    "warm_run",
    "code_location_load",
    "load_no_bytecode",
}


@pytest.mark.postgres
@pytest.mark.services
@pytest.mark.timeout(600)  # about a minute alone; several on a busy shared CI runner
def test_orchestration_bench_quick(postgres_service, redis_service, tmp_path):
    out = tmp_path / "results.json"
    argv = [sys.executable, str(ROOT / "bench" / "orchestration.py"), "--quick", "--json", str(out)]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=540)

    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines[-2].startswith("ratio Dagster (Celery executor) / bare Celery: ")
    assert re.fullmatch(
        r"ratio warm / celery-executor: \d+\.\d\dx CPU \(\d+\.\d\d s vs \d+\.\d\d s per run\), "
        r"\d+\.\d\dx wall; warm vs bare Celery: \d+(\.\d)? x CPU",
        lines[-1],
    ), lines[-1]
    assert "skipped (--quick" in proc.stdout
    results = json.loads(out.read_text())
    assert {way["name"] for way in results["ways"]} == WAYS
    assert all(len(way["samples"]) == 2 for way in results["ways"])
    assert results["runs_per_day"] > 0
    assert len(results["warm_worker_rss_mb"]) == 3
