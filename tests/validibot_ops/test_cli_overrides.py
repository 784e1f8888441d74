"""Issue 28: ``validibot-ops overrides check FILE`` and the ``resume`` id hint, in process."""

from __future__ import annotations

import json

from validibot.tasks.overrides import OVERRIDES_ENV
from validibot_ops.cli import main
from validibot_ops.definitions import build_definitions
from validibot_ops.tags import OVERRIDE_PROBLEM_TAG

GOOD = {"cron": "45 5 * * *", "reason": "INC-42", "author": "alice"}


def test_check_prints_the_code_locations_own_message_and_exits_1(tmp_path, monkeypatch, capsys):
    path = tmp_path / "overrides.json"
    bad = {"cron": "0 0 31 2 *", "reason": "INC-9", "author": "alice"}
    path.write_text(json.dumps({"clear_sessions": bad, "purge_expired_submissions": GOOD}))
    assert main(["overrides", "check", str(path)]) == 1
    out, err = capsys.readouterr()
    assert "ok: purge_expired_submissions: cron='45 5 * * *'" in out
    [error] = [line for line in err.splitlines() if line.startswith("error: ")]
    # The very message the loaded code location tags the held schedule with.
    monkeypatch.setenv(OVERRIDES_ENV, str(path))
    schedule = build_definitions().resolve_schedule_def("clear_sessions_schedule")
    assert error == f"error: {schedule.tags[OVERRIDE_PROBLEM_TAG]}"


def test_check_of_a_clean_file_exits_0(tmp_path, capsys):
    path = tmp_path / "overrides.yaml"
    path.write_text("clear_sessions:\n  enabled: false\n  reason: INC-1\n  author: bob\n")
    assert main(["overrides", "check", str(path)]) == 0
    assert "1 override(s) would apply" in capsys.readouterr().out


def test_check_of_a_file_that_does_not_exist_or_parse_exits_1(tmp_path, capsys):
    assert main(["overrides", "check", str(tmp_path / "absent.yaml")]) == 1
    assert "cannot read the file" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert main(["overrides", "check", str(broken)]) == 1
    assert f"error: {broken}: not valid JSON" in capsys.readouterr().err


def test_resume_with_a_schedule_name_says_the_task_id(capsys):
    assert main(["resume", "clear_sessions_schedule"]) == 2
    assert "the task id is 'clear_sessions'" in capsys.readouterr().err
    assert main(["resume", "clear_sesions"]) == 2
    assert "did you mean 'clear_sessions'?" in capsys.readouterr().err
