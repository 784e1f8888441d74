"""The architecture, enforced: a Django-free task package, and arrows between apps only go down."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "validibot"

LAYERS = {
    "tasks": 0,  # pure data: imports neither Django nor Dagster nor any app
    "core": 1,  # the shared base: command base, batch loop, locks, settings checks
    "submissions": 2,
    "validations": 2,
    "audit": 2,
    "notifications": 2,  # periodic emails
    "retention": 3,  # purges submissions and outputs
    "operations": 4,  # talks to Dagster about every task
    "demo": 5,  # seeds every app
}
"""An app may import only apps of a lower layer (and itself)."""


def _app_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "validibot" else None


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_every_app_is_placed_in_a_layer():
    apps = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert apps <= set(LAYERS), f"add {sorted(apps - set(LAYERS))} to LAYERS in {__file__}"


@pytest.mark.parametrize("app", sorted(LAYERS))
def test_an_app_imports_only_the_layers_below_it(app: str):
    upward = []
    for path in sorted((PACKAGE / app).rglob("*.py")):
        for module in _imports(path):
            other = _app_of(module)
            if other and other != app and LAYERS.get(other, 99) >= LAYERS[app]:
                upward.append(f"{path.relative_to(PACKAGE.parent)} imports {module}")
    assert not upward, "imports that do not go down:\n" + "\n".join(upward)


def test_the_task_package_imports_neither_django_nor_dagster_on_a_clean_interpreter():
    modules = sorted(p.stem for p in (PACKAGE / "tasks").glob("*.py") if p.stem != "__init__")
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module('validibot.tasks.' + name)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'django', 'dagster', 'celery'}))"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", code],
        cwd=PACKAGE.parent,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(PACKAGE.parent), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"validibot.tasks pulled in {result.stdout.strip()}"


def _loops_around_a_transaction(path: Path) -> list[int]:
    """Line numbers of ``for``/``while`` loops whose body opens ``transaction.atomic``."""

    def opens_atomic(node: ast.AST) -> bool:
        return any(
            isinstance(inner, ast.With)
            and any(
                isinstance(item.context_expr, ast.Call)
                and ast.unparse(item.context_expr.func).endswith("atomic")
                for item in inner.items
            )
            for inner in ast.walk(node)
        )

    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.For | ast.While) and opens_atomic(node)
    ]


def test_every_batch_loop_is_the_shared_one():
    """A command's batches go through ``validibot.core.batches.run_in_batches`` (one
    transaction per batch, the stop check between batches); a hand-written loop that commits
    batch after batch skips the stop check, so it is refused here."""
    shared = PACKAGE / "core" / "batches.py"
    loops = [
        f"{path.relative_to(PACKAGE.parent)}:{line}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != shared and "migrations" not in path.parts
        for line in _loops_around_a_transaction(path)
    ]
    assert not loops, "batch loops outside run_in_batches:\n" + "\n".join(loops)
