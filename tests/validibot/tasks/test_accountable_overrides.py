"""Issue 19 item 4: every incident override says why, who, and (optionally) until when."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta

import pytest

from validibot.tasks.overrides import OverridesError, load_override_file, load_overrides

NOW = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


def _write(tmp_path, entries: dict, written_at: datetime = NOW - timedelta(hours=2)):
    """The file as an operator left it, last modified at ``written_at``."""
    path = tmp_path / "overrides.json"
    path.write_text(json.dumps(entries))
    os.utime(path, (written_at.timestamp(), written_at.timestamp()))
    return path


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"enabled": False, "author": "alice"}, "task 'clear_sessions': reason is required"),
        ({"enabled": False, "reason": "INC-1"}, "task 'clear_sessions': author is required"),
        ({"enabled": False, "reason": " ", "author": "a"}, "reason must be a non-empty text"),
        ({"enabled": False, "reason": "r", "author": None}, "author must be a non-empty text"),
        (
            {"enabled": False, "reason": "r", "author": "a", "expires_at": "2026-12-03T06:00:00"},
            "expires_at 2026-12-03T06:00:00 has no timezone",
        ),
        (
            {"enabled": False, "reason": "r", "author": "a", "expires_at": "tomorrow"},
            "expires_at 'tomorrow' is not an ISO 8601 date and time",
        ),
        (
            {"enabled": False, "reason": "r", "author": "a", "expires_at": "2026-12-01T00:00:00Z"},
            "expires_at 2026-12-01T00:00:00+00:00 is not after the file was written",
        ),
    ],
)
def test_an_unaccountable_entry_is_refused_naming_it(tmp_path, entry, message):
    path = _write(tmp_path, {"clear_sessions": entry})
    with pytest.raises(OverridesError, match=re.escape(message)) as refused:
        load_override_file(path, now=NOW)
    assert str(path) in str(refused.value)


def test_an_entry_that_has_expired_since_it_was_written_stops_applying(tmp_path):
    path = _write(
        tmp_path,
        {
            "clear_sessions": {
                "enabled": False,
                "reason": "INC-7",
                "author": "alice",
                "expires_at": "2026-12-02T05:00:00Z",
            },
            "purge_expired_outputs": {
                "cron": "30 4 * * *",
                "reason": "INC-8",
                "author": "bob",
                "expires_at": "2026-12-02T07:00:00+01:00",  # 06:00 UTC: expires at NOW
            },
            "cleanup_stuck_runs": {"enabled": False, "reason": "INC-9", "author": "carol"},
        },
    )
    loaded = load_override_file(path, now=NOW)
    assert set(loaded.expired) == {"clear_sessions", "purge_expired_outputs"}
    assert set(loaded.active) == {"cleanup_stuck_runs"}
    assert load_overrides(path, now=NOW) == loaded.active
    before = load_override_file(path, now=NOW - timedelta(hours=1, seconds=1))
    assert set(before.active) == {"clear_sessions", "purge_expired_outputs", "cleanup_stuck_runs"}


def test_the_description_names_reason_author_and_expiry(tmp_path):
    path = tmp_path / "overrides.yaml"
    # YAML reads an unquoted timestamp as a datetime: it is accepted like the JSON string.
    path.write_text(
        "clear_sessions:\n  enabled: false\n  reason: INC-42\n  author: alice\n"
        "  expires_at: 2030-01-01T06:00:00Z\n"
    )
    override = load_overrides(path)["clear_sessions"]
    assert override.expires_at == datetime(2030, 1, 1, 6, tzinfo=UTC)
    assert override.describe() == (
        "enabled=False (INC-42; by alice; expires 2030-01-01T06:00:00+00:00)"
    )
