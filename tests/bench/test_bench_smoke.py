"""Every benchmark runs end to end in --quick mode and prints its ratio line; no timings checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.services import postgres_url
from validibot.tasks.registry import BACKEND_DAGSTER, BUILTIN_TASKS

pytestmark = pytest.mark.subprocess  # runs the bench scripts as an operator would

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
SMOKE_DATABASE = "validibot_bench_smoke"  # not the bench's own database: a real run may be going

# Each bench script and the arguments of its smoke run (besides --quick and --json).
SMOKE_ARGS: dict[str, list[str]] = {
    "purge.py": ["--repeat", "1", "--database-url", postgres_url(SMOKE_DATABASE)],
    "registry_scale.py": [],
    "history.py": [],
}


def run_bench(script: str, tmp_path: Path, timeout: float = 240) -> tuple[str, list[dict]]:
    out = tmp_path / "results.json"
    argv = [sys.executable, str(BENCH / script), "--quick", "--json", str(out), *SMOKE_ARGS[script]]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout, json.loads(out.read_text())


def last_line(stdout: str) -> str:
    return [line for line in stdout.splitlines() if line.strip()][-1]


def test_every_bench_has_a_smoke_run():
    """A bench in bench/ is named by some smoke test here (this file or its own test module)."""
    smoke_sources = "".join(path.read_text() for path in Path(__file__).parent.glob("test_*.py"))
    missing = [path.name for path in BENCH.glob("*.py") if path.name not in smoke_sources]
    assert not missing, f"benches without a --quick smoke test: {missing}"


@pytest.mark.postgres
def test_purge_bench_quick(postgres_service, tmp_path):
    stdout, results = run_bench("purge.py", tmp_path)

    assert last_line(stdout).startswith("ratio N=10,000: ours / raw SQL = ")
    methods = {(row["kind"], row["method"]) for row in results}
    assert methods == {
        (kind, method)
        for kind in ("submissions", "outputs")
        for method in ("raw_sql", "ours", "naive_orm")
    }
    assert {row["check"] for row in results} == {"ok"}, "every method purged exactly the due rows"


def test_registry_scale_bench_quick(tmp_path):
    stdout, results = run_bench("registry_scale.py", tmp_path)

    builtin = len(BUILTIN_TASKS)
    scheduled = sum(BACKEND_DAGSTER in t.backends for t in BUILTIN_TASKS)
    assert last_line(stdout).startswith(f"ratio {100 + builtin} tasks / {builtin} built-in: ")
    loaded = {(row["case"], row["what"]): row for row in results}
    assert loaded[("+100", "registry")]["tasks"] == 100 + builtin
    # One schedule per scheduled task, plus the hourly outcome checks' (validibot_ops/checks.py).
    assert loaded[("+100", "definitions")]["schedules"] == 100 + scheduled + 1


@pytest.mark.postgres
def test_purge_bench_claim_cost(postgres_service):
    argv = [sys.executable, str(BENCH / "purge.py"), "--claim-cost", "--quick"]
    argv += ["--database-url", postgres_url(SMOKE_DATABASE)]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=240)

    assert proc.returncode == 0, proc.stderr[-3000:]
    claims = [line for line in proc.stdout.splitlines() if line.startswith("claim of 100 ")]
    assert len(claims) == 2 and all("per 1M rows at batch size 100" in c for c in claims)


@pytest.mark.postgres
def test_history_bench_quick(postgres_service, tmp_path):
    # A dagster-webserver start and a prune per simulated day: slow on a loaded machine.
    stdout, results = run_bench("history.py", tmp_path, timeout=900)

    assert last_line(stdout).startswith("ratio day 12: event rows with / without prune = ")
    checkpoints, (rollup,) = results[:-1], [r["rollup"] for r in results[-1:]]
    assert rollup["intact"] and rollup["pending_ledger"] == 0
    assert checkpoints[-1]["with"]["event_rows"] == checkpoints[-2]["with"]["event_rows"]
    assert checkpoints[-1]["without"]["event_rows"] > checkpoints[-2]["without"]["event_rows"]
