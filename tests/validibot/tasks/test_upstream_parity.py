"""Our registry against upstream's at dd69a970: same ids, crons and backends, or a stated why."""

from __future__ import annotations

import pytest

from tests.validibot.tasks.upstream_registry import (
    INTENDED_DIFFERENCES,
    OPS_ONLY_TASKS,
    UPSTREAM_TASKS,
)
from validibot.tasks.registry import ALL_BACKENDS, BUILTIN_TASKS

# "all" means every scheduler either side has. Upstream's "celery" (Beat on a self-hosted
# host) has no equivalent word here, so a celery-only task must be listed as intended.
UPSTREAM_BACKENDS = {
    "all": ALL_BACKENDS,
    "celery": frozenset({"celery"}),
    "gcp": frozenset({"gcp"}),
    "aws": frozenset({"aws"}),
}


def snake(upstream_id: str) -> str:
    return upstream_id.replace("-", "_")


def upstream_view() -> dict[str, dict[str, object]]:
    return {
        snake(uid): {"cron": cron, "backends": UPSTREAM_BACKENDS[backends]}
        for uid, (cron, backends) in UPSTREAM_TASKS.items()
    }


def ours() -> dict[str, dict[str, object]]:
    return {t.id: {"cron": t.cron, "backends": frozenset(t.backends)} for t in BUILTIN_TASKS}


def differences() -> list[str]:
    """Every difference with upstream that is not listed as intended, in plain words."""
    theirs, mine = upstream_view(), ours()
    found = [f"{i}: upstream has it, we do not" for i in sorted(set(theirs) - set(mine))]
    ops_only = set(mine) - set(theirs) - set(OPS_ONLY_TASKS)
    found += [f"{i}: we have it, upstream does not" for i in sorted(ops_only)]
    found += [
        f"{i}: listed as ops-only, but upstream has it"
        for i in sorted(set(theirs) & set(OPS_ONLY_TASKS))
    ]
    found += [
        f"{i}: listed as ops-only, but not in our registry"
        for i in sorted(set(OPS_ONLY_TASKS) - set(mine))
    ]
    for task_id in sorted(set(theirs) & set(mine)):
        for field, expected in theirs[task_id].items():
            actual = mine[task_id][field]
            intended = INTENDED_DIFFERENCES.get((task_id, field))
            if intended is not None:
                if actual != intended[0]:
                    found.append(
                        f"{task_id}.{field}: {actual!r}, but the intended value is "
                        f"{intended[0]!r} ({intended[1]})"
                    )
            elif actual != expected:
                found.append(f"{task_id}.{field}: ours {actual!r}, upstream {expected!r}")
    return found


def test_the_registry_matches_upstream_except_the_listed_differences():
    assert differences() == []


def test_every_ops_only_task_says_why_upstream_has_none():
    for task_id, reason in OPS_ONLY_TASKS.items():
        assert reason.strip(), f"{task_id}: say why it is ops-only"


def test_every_intended_difference_is_still_a_difference_and_has_a_reason():
    theirs = upstream_view()
    for (task_id, field), (value, reason) in INTENDED_DIFFERENCES.items():
        assert reason.strip(), f"{task_id}.{field}: say why it differs"
        assert theirs[task_id][field] != value, f"{task_id}.{field} now equals upstream: drop it"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"purge_expired_outputs": {"cron": "0 * * * *"}}, "purge_expired_outputs.cron"),
        ({"verify_validator_deployments": {"backends": ALL_BACKENDS}}, "backends"),
        ({"enforce_audit_retention": None}, "upstream has it, we do not"),
        ({"prune_dagster_history": None}, "listed as ops-only, but not in our registry"),
        (
            {"made_up_task": {"cron": "0 0 * * *", "backends": ALL_BACKENDS}},
            "made_up_task: we have it",
        ),
    ],
)
def test_a_drift_is_reported(monkeypatch, change, expected):
    """The comparison itself can fail: drift introduced into our side is named."""
    real = ours()
    for task_id, fields in change.items():
        if fields is None:
            real.pop(task_id)
        elif task_id not in real:
            real[task_id] = fields
        else:
            real[task_id] = {**real[task_id], **fields}
    monkeypatch.setattr(f"{__name__}.ours", lambda: real)
    assert any(expected in line for line in differences())
