"""Issue 28 point 6: every date an example tells the reader to type is in the future.

An override's ``expires_at`` or a maintenance ``--until`` copied from the docs or from the
CLI's own hint must be accepted, not refused as past; the ``--history --since/--until`` range
is a look back and is left out.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from tests.support.dagster_stack import REPO_ROOT
from validibot.operations.maintenance import MaintenanceInputError, parse_until
from validibot.tasks import overrides

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
_INPUT = re.compile(r"expires_at|--until")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?(?:Z|[+-]\d{2}:\d{2})?)?")


def _dates(text: str) -> list[datetime]:
    found = []
    for match in _DATE.findall(text):
        value = datetime.fromisoformat(match.replace("Z", "+00:00"))
        found.append(value if value.tzinfo else value.replace(tzinfo=UTC))
    return found


def _example_lines() -> list[tuple[str, str]]:
    return [
        (f"{doc.relative_to(REPO_ROOT)}:{number}", line)
        for doc in DOCS
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1)
        if _INPUT.search(line) and "--history" not in line and _DATE.search(line)
    ]


def test_the_docs_have_dated_examples_to_check():
    assert len(_example_lines()) >= 2  # the override example and the maintenance --until


@pytest.mark.parametrize(("where", "line"), _example_lines())
def test_every_example_date_in_the_docs_is_in_the_future(where, line):
    now = datetime.now(UTC)
    assert all(date > now for date in _dates(line)), f"{where}: {line.strip()}"


@pytest.mark.parametrize("typed", ["tomorrow", "2099-12-03T06:00:00"])
def test_the_cli_hint_for_until_is_in_the_future_and_accepted(typed):
    with pytest.raises(MaintenanceInputError) as refused:
        parse_until(typed)
    hinted = _DATE.findall(str(refused.value).split("e.g.")[-1])
    assert hinted, str(refused.value)
    for example in hinted:
        assert parse_until(example) > datetime.now(UTC)  # accepted as given


def test_the_maintenance_help_and_the_overrides_docstring_give_future_dates(capsys):
    from validibot_ops.cli import main

    with pytest.raises(SystemExit):
        main(["maintenance", "on", "--help"])
    help_text = capsys.readouterr().out
    now = datetime.now(UTC)
    assert _dates(help_text) and all(d > now for d in _dates(help_text))
    assert _dates(overrides.__doc__ or "") and all(d > now for d in _dates(overrides.__doc__ or ""))
