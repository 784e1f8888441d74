"""Issue 28 point 7: a missing or empty DAGSTER_HOME, or a missing ``-w`` file, is one line.

Before, Dagster printed a traceback for a home that does not exist or a workspace file that
is not there, and an empty home was quietly made into a fresh instance ("11 in sync", exit 0).
"""

from __future__ import annotations

import pytest

from validibot_ops.cli import main

VERBS = [
    ["sync-schedules", "--check"],
    ["resume", "clear_sessions"],
    ["maintenance", "off"],
    ["maintenance", "on", "--reason", "deploy", "--author", "alice"],
]


@pytest.mark.parametrize("verb", VERBS, ids=lambda v: " ".join(v[:2]))
def test_a_home_that_does_not_exist_is_one_line(tmp_path, monkeypatch, capsys, verb):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "absent"))
    assert main(verb) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: DAGSTER_HOME={tmp_path / 'absent'} is not a directory: " + (
        "point it at the Dagster instance's home"
    )
    assert not (tmp_path / "absent").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("verb", VERBS, ids=lambda v: " ".join(v[:2]))
def test_an_empty_home_is_refused_and_left_empty(tmp_path, monkeypatch, capsys, verb):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    assert main(verb) == 2
    err = capsys.readouterr().err
    assert "holds no dagster.yaml" in err and "nothing was changed" in err
    assert len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("verb", [v for v in VERBS if v[1] != "off"], ids=lambda v: v[0])
def test_a_missing_workspace_file_is_one_line(tmp_path, monkeypatch, capsys, verb):
    (tmp_path / "dagster.yaml").write_text("{}\n")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    missing = tmp_path / "nope.yaml"
    assert main([*verb, "-w", str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: workspace file {missing} does not exist")
    assert len(err.splitlines()) == 1
