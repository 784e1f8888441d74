"""seed_demo_data feeds every task; after one pass of every task a second pass does nothing."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from validibot.core.runner import run_task_command
from validibot.tasks.registry import get_tasks

pytestmark = pytest.mark.django_db

# Counts that mean "rows were changed"; the rest (examined, kept, skipped_busy, handlers, ...)
# describe what was looked at.
AFFECTED = {
    "purged",
    "failed",
    "batches",
    "succeeded",
    "already_purged",
    "deferred",
    "timed_out",
    "removed",
    "deleted",
    "sent",
    "archived",
    "actors_swept",
    "tokens_deleted",
    "continuations_eligible",
    "continuations_dispatched",
    "continuations_not_required",
}

FIRST_PASS_PER_SCALE = {
    "purge_expired_submissions": {"purged": 10, "skipped_busy": 2},
    "purge_expired_outputs": {"purged": 10},
    "process_purge_retries": {"succeeded": 2},
    "cleanup_stuck_runs": {
        "timed_out": 3,
        "continuations_dispatched": 1,
        "continuations_not_required": 1,
    },
    "cleanup_orphaned_containers": {"engine_unreachable": 1},
    "cleanup_idempotency_keys": {"deleted": 10},
    "cleanup_callback_receipts": {"deleted": 10},
    "clear_sessions": {"deleted": 10},
    "send_periodic_emails": {},
    "enforce_audit_retention": {"archived": 10, "deleted": 10, "actors_swept": 10},
    "purge_stale_oidc_clients": {"deleted": 10, "tokens_deleted": 5, "kept_live_token": 2},
}


def run_every_task() -> dict[str, dict]:
    """Every task but those that talk to Dagster's webserver (this test has none; the prune is
    run for real in tests/integration/dagster/test_prune_history.py)."""
    return {t.id: run_task_command(t) for t in get_tasks() if not t.needs_webserver}


@pytest.mark.parametrize("scale", [1, 3])
def test_seeded_rows_are_processed_once(settings, tmp_path, scale):
    settings.VALIDIBOT_DOCKER_URL = f"unix://{tmp_path}/no-docker.sock"
    out = io.StringIO()
    call_command("seed_demo_data", f"--scale={scale}", stdout=out)
    assert json.loads(out.getvalue())["seeded"]["submissions"] == 17 * scale

    first = run_every_task()

    assert {s["status"] for s in first.values()} == {"completed"}
    for task_id, expected in FIRST_PASS_PER_SCALE.items():
        counts = first[task_id]["counts"]
        for name, per_scale in expected.items():
            per_scale = per_scale if name == "engine_unreachable" else per_scale * scale
            assert counts[name] == per_scale, (task_id, name, counts)
        assert counts.get("failed", 0) == counts.get("continuations_failed", 0) == 0

    second = run_every_task()

    for task_id, summary in second.items():
        affected = {k: v for k, v in summary["counts"].items() if k in AFFECTED and v}
        assert affected == {}, task_id
