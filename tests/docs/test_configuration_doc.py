"""docs/configuration.md documents every environment variable the code and config read."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "configuration.md"
SOURCES = [
    *sorted((ROOT / "config").rglob("*.py")),
    *sorted((ROOT / "validibot").rglob("*.py")),
    *sorted((ROOT / "validibot_ops").rglob("*.py")),
]
YAML = [ROOT / "dagster.yaml", *sorted((ROOT / "deploy").glob("*.yaml"))]

NAME = r"\"([A-Z][A-Z0-9_]{2,})\""
PATTERNS = [
    re.compile(r"\benv(?:\.[a-z]+)?\(\s*" + NAME),  # django-environ: env("X"), env.int(\n "X"
    re.compile(r"environ(?:\.get|\.setdefault|\.pop)?\s*[\[(]\s*" + NAME),  # os.environ[...]
    re.compile(r"getenv\(\s*" + NAME),
    re.compile(r"^[A-Z_]*_ENV\s*=\s*" + NAME, re.MULTILINE),  # FOO_ENV = "X" constants
]
ENV_TUPLE = re.compile(r"^[A-Z_]*_ENVS\s*=\s*\(([^)]*)\)", re.MULTILINE)
YAML_ENV = re.compile(r"env:\s*([A-Z][A-Z0-9_]+)")
NOT_OURS = {"PATH", "HOME"}  # process plumbing, not configuration
# Read by Dagster itself rather than by our code, and documented all the same.
READ_BY_TOOLS = {"DAGSTER_HOME"}


def variables_read() -> set[str]:
    found: set[str] = set()
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        for pattern in PATTERNS:
            found.update(pattern.findall(text))
        for group in ENV_TUPLE.findall(text):
            found.update(re.findall(NAME, group))
    for path in YAML:
        found.update(YAML_ENV.findall(path.read_text(encoding="utf-8")))
    return found - NOT_OURS


def documented() -> set[str]:
    rows = [line for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith("| `")]
    return {re.match(r"\| `([A-Z0-9_]+)`", row).group(1) for row in rows}


def test_the_scan_finds_variables_from_every_kind_of_source():
    found = variables_read()
    # one from each pattern: django-environ, os.environ, *_ENV constants, *_ENVS tuples, yaml
    assert {
        "DATABASE_URL",
        "CELERY_WORKER_CONCURRENCY",
        "VALIDIBOT_SCHEDULE_OVERRIDES",
        "CELERY_RESULT_BACKEND",
        "DAGSTER_PG_HOST",
    } <= found


def test_every_variable_the_code_reads_is_documented():
    missing = sorted(variables_read() - documented())
    assert not missing, f"add these to docs/configuration.md: {missing}"


def test_every_documented_variable_is_read_somewhere():
    stale = sorted(documented() - variables_read() - READ_BY_TOOLS - {"DJANGO_SETTINGS_MODULE"})
    assert not stale, f"documented but never read (remove or wire up): {stale}"


def test_the_task_table_in_architecture_md_matches_the_registry():
    from validibot.tasks.registry import BUILTIN_TASKS

    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = text.split("<!-- tasks-table -->")[1].split("<!-- /tasks-table -->")[0]
    rows = [line for line in table.strip().splitlines()[2:]]
    expected = [
        f"| `{t.id}` | `{t.command}` | `{t.cron}` | {t.queue} | {t.description} |"
        for t in BUILTIN_TASKS
    ]
    assert rows == expected


def test_the_file_map_in_architecture_md_matches_the_tree():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = text.split("<!-- file-map -->")[1].split("<!-- /file-map -->")[0]
    mapped = {
        line.split("`")[1].rstrip("/") for line in block.splitlines() if line.startswith("| `")
    }
    apps = {
        f"validibot/{p.name}"
        for p in (ROOT / "validibot").iterdir()
        if (p / "__init__.py").exists()
    }
    assert apps | {"validibot_ops"} == mapped
