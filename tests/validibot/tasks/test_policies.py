"""Schedule policy fields: validation naming the entry, the built-in choices, the pure rules."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta

import pytest

from validibot.tasks.policies import (
    FailurePolicyState,
    FinishedRun,
    InProgressRun,
    catchup_skip_reason,
    failure_streak,
    overlap_skip_reason,
    policy_summary,
    privacy_level,
)
from validibot.tasks.registry import MaintenanceTask, RegistryError, get_task, register

BASE = MaintenanceTask(
    id="partner_sync", name="Partner sync", command="noop_task", cron="0 * * * *"
)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"overlap_policy": "replace"}, "overlap_policy 'replace' must be one of skip, buffer_one"),
        ({"catchup_window_seconds": 30}, "catchup_window_seconds 30 must be None"),
        ({"catchup_window_seconds": "1h"}, "catchup_window_seconds '1h' must be None"),
        ({"pause_after_failures": 0}, "pause_after_failures 0 must be None (never pause)"),
        ({"pause_after_failures": True}, "pause_after_failures True must be None"),
        ({"privacy": "yes"}, "privacy 'yes' must be True or False"),
        (
            {"privacy": True, "pause_after_failures": 3},
            "privacy=True tasks delete personal data and are never paused",
        ),
    ],
)
def test_a_bad_policy_is_refused_naming_the_entry(changes, problem):
    bad = dataclasses.replace(BASE, **changes)
    with pytest.raises(RegistryError, match=re.escape(problem)) as caught:
        register(bad)
    assert str(caught.value).startswith("scheduled task 'partner_sync': ")


def test_good_policies_are_accepted():
    register(
        dataclasses.replace(
            BASE, overlap_policy="buffer_one", catchup_window_seconds=60, pause_after_failures=1
        )
    )
    assert get_task("partner_sync").pause_after_failures == 1


def test_the_builtin_defaults():
    """Purges and other deletions of personal data are privacy tasks; emails do not catch up."""
    privacy = {
        "purge_expired_submissions",
        "purge_expired_outputs",
        "process_purge_retries",
        "clear_sessions",
        "enforce_audit_retention",
    }
    from validibot.tasks.registry import get_tasks

    for task in get_tasks():
        assert task.privacy is (task.id in privacy), task.id
        assert task.overlap_policy == "skip"
        assert task.pause_after_failures is None
        expected = 3600 if task.id == "send_periodic_emails" else None
        assert task.catchup_window_seconds == expected, task.id
    assert policy_summary(get_task("send_periodic_emails")) == (
        "overlap=skip; catch-up=1h; pause=never; privacy=no"
    )


def test_catchup_reason_names_the_window_and_only_past_it():
    now = datetime(2026, 12, 2, 6, tzinfo=UTC)
    assert catchup_skip_reason("t", 3600, now - timedelta(seconds=3600), now) is None
    assert catchup_skip_reason("t", None, now - timedelta(days=9), now) is None
    reason = catchup_skip_reason("t", 3600, now - timedelta(seconds=3601), now)
    assert reason is not None and "catchup_window_seconds=3600 (1h)" in reason


def test_overlap_rules():
    started, queued = InProgressRun("r1", "STARTED"), InProgressRun("r2", "QUEUED")
    assert overlap_skip_reason("t", "skip", [started])
    assert overlap_skip_reason("t", "buffer_one", [started]) is None
    assert "r2" in (overlap_skip_reason("t", "buffer_one", [started, queued]) or "")
    assert overlap_skip_reason("t", "allow", [started, queued]) is None


def test_a_streak_ends_at_a_real_success_or_the_run_already_acted_on():
    runs = [
        FinishedRun("f3", "FAILURE"),
        FinishedRun("c", "CANCELED"),
        FinishedRun("d", "SUCCESS", dry_run=True),
        FinishedRun("f2", "FAILURE"),
        FinishedRun("s", "SUCCESS"),
        FinishedRun("f1", "FAILURE"),
    ]
    assert failure_streak(runs) == ["f3", "f2"]
    assert failure_streak(runs, since_run_id="f2") == ["f3"]


def test_privacy_levels_rise_then_repeat_at_each_doubling():
    assert [privacy_level(n) for n in (0, 1)] == [None, None]
    assert privacy_level(2) == (2, "WARNING")
    assert privacy_level(5) == (4, "ERROR")
    assert privacy_level(8) == (8, "CRITICAL")
    assert privacy_level(31) == (16, "CRITICAL")
    assert privacy_level(32) == (32, "CRITICAL")


def test_an_unreadable_cursor_starts_afresh():
    assert FailurePolicyState.load("{not json") == FailurePolicyState()
    state = FailurePolicyState(paused={"a": "why"}, acted_on={"a": "r"}, levels={"b": 4})
    assert FailurePolicyState.load(state.dump()) == state
