"""The architecture, enforced: a Django-free task package, and arrows between apps only go down."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "validibot"

FACADE = "core.tasks"
LAYERS = {
    "tasks": 0,  # pure data: imports neither Django nor Dagster nor any app
    "core": 1,  # the shared base: command base, batch loop, locks, settings checks
    "submissions": 2,
    "validations": 2,
    "audit": 2,
    "notifications": 2,  # periodic emails
    "idp": 2,  # OIDC clients and tokens
    "retention": 3,  # purges submissions and outputs
    "operations": 4,  # talks to Dagster about every task
    "demo": 5,  # seeds every app
    # Upstream's documented import path (validibot.core.tasks.registry, .scheduled_tasks): a
    # facade over every layer that keeps downstream packages working. It lives under core
    # because upstream put it there; no product module may import it.
    FACADE: 6,
}
"""An app may import only apps of a lower layer (and itself)."""


def _app_of(module: str) -> str | None:
    if module == "validibot.core.tasks" or module.startswith("validibot.core.tasks."):
        return FACADE
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "validibot" else None


def _files_of(app: str) -> list[Path]:
    if app == FACADE:
        return sorted((PACKAGE / "core" / "tasks").rglob("*.py"))
    return [
        path
        for path in sorted((PACKAGE / app).rglob("*.py"))
        if _app_of(".".join(("validibot", *path.relative_to(PACKAGE).with_suffix("").parts))) == app
    ]


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


def test_nothing_in_the_product_imports_upstreams_facade():
    """The facade may reach every layer because nothing below it imports it (no cycle)."""
    users = [
        f"{path.relative_to(PACKAGE.parent)} imports {module}"
        for root in (PACKAGE, PACKAGE.parent / "validibot_ops")
        for path in sorted(root.rglob("*.py"))
        if FACADE.replace(".", "/") not in path.as_posix()
        for module in _imports(path)
        if _app_of(module) == FACADE
    ]
    assert not users, "\n".join(users)


@pytest.mark.parametrize("app", sorted(LAYERS))
def test_an_app_imports_only_the_layers_below_it(app: str):
    upward = []
    for path in _files_of(app):
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


def _runtime_imports(path: Path, modules: set[str]) -> set[str]:
    """Product modules ``path`` imports at run time, function-local ones included (imports
    under ``if TYPE_CHECKING:`` are annotations only and never run)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
        for inner in ast.walk(node)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.update({node.module} & modules)
            found.update({f"{node.module}.{a.name}" for a in node.names} & modules)
    return found


def _product_modules() -> dict[str, Path]:
    modules = {}
    for package in (PACKAGE, PACKAGE.parent / "validibot_ops"):
        for path in package.rglob("*.py"):
            if "migrations" not in path.parts:
                parts = path.relative_to(package.parent).with_suffix("").parts
                modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _cycle_through(start: str, graph: dict[str, set[str]]) -> list[str] | None:
    """One import path from ``start`` back to itself, or ``None``."""
    stack, seen = [(start, [start])], set()
    while stack:
        module, path = stack.pop()
        for other in sorted(graph[module]):
            if other == start:
                return [*path, start]
            if other not in seen:
                seen.add(other)
                stack.append((other, [*path, other]))
    return None


def test_no_import_cycles_in_the_product_not_even_function_local_ones():
    """A cycle hidden behind an import inside a function still ties two modules together;
    both packages, ``validibot`` and ``validibot_ops``, are checked."""
    modules = _product_modules()
    graph = {name: _runtime_imports(path, set(modules)) - {name} for name, path in modules.items()}
    cycles = {" -> ".join(c) for name in graph if (c := _cycle_through(name, graph))}
    assert not cycles, "import cycles:\n" + "\n".join(sorted(cycles))


OPS_MAY_IMPORT = {
    "validibot.tasks": "the registry and what is computed from it: Django-free, read at load",
    "validibot.core.broker": "the broker variables, one rule (pure Python, read at load)",
    "validibot.core.celery_tasks": "Celery task names of upstream-shaped tasks (no Django)",
    "validibot.core.runner": "runs a task's command in-process (inside a run, after setup)",
    "validibot.core.outcomes": "evaluates a task's outcome checks (inside a run, after setup)",
    "validibot.operations.maintenance": "maintenance mode's stored window (a Django model): "
    "the CLI and the maintenance sensor read and write it after setting Django up",
}
"""What the code location (``validibot_ops``) may import from the Django side, and why."""
OPS_MODULE_LEVEL = {"validibot.tasks", "validibot.core.broker", "validibot.core.celery_tasks"}
"""The part of it that may be imported when the code location loads (no Django there)."""


def _allowed(module: str, names: Iterable[str]) -> bool:
    return any(module == name or module.startswith(f"{name}.") for name in names)


def test_the_code_location_imports_only_the_named_django_side_modules():
    refused = []
    for path in sorted((PACKAGE.parent / "validibot_ops").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                # ``from a.b import c`` reads as a.b.c: c may be a submodule or a name in a.b
                modules = [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            for module in (m for m in modules if m.startswith("validibot.")):
                names = OPS_MODULE_LEVEL if id(node) in top_level else OPS_MAY_IMPORT
                if not _allowed(module, names):
                    where = "at load" if id(node) in top_level else "at run time"
                    refused.append(
                        f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {module} ({where})"
                    )
    assert not refused, "validibot_ops imports from the Django side outside OPS_MAY_IMPORT:\n" + (
        "\n".join(refused)
    )


def test_private_dagster_names_are_imported_in_one_module_only():
    """``validibot_ops/dagster_internals.py`` lists each with the reason no public API serves."""
    allowed = PACKAGE.parent / "validibot_ops" / "dagster_internals.py"
    private = [
        f"{path.relative_to(PACKAGE.parent)} imports {module}"
        for root in (PACKAGE, PACKAGE.parent / "validibot_ops")
        for path in sorted(root.rglob("*.py"))
        if path != allowed
        for module in _imports(path)
        if module.startswith("dagster._")
    ]
    assert not private, "\n".join(private)


RUN_STATUSES = {
    "QUEUED",
    "NOT_STARTED",
    "STARTING",
    "STARTED",
    "SUCCESS",
    "FAILURE",
    "CANCELING",
    "CANCELED",
}


def _is_status(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return node.value in RUN_STATUSES
    return (
        isinstance(node, ast.Attribute)
        and node.attr in RUN_STATUSES
        and ast.unparse(node.value).endswith("DagsterRunStatus")
    )


def test_every_set_of_run_statuses_is_declared_once_in_the_vocabulary():
    """One status vocabulary: a set of run statuses written anywhere but
    ``validibot/tasks/vocabulary.py`` is how two of them came to disagree about CANCELING."""
    vocabulary = PACKAGE / "tasks" / "vocabulary.py"
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
        for root in (PACKAGE, PACKAGE.parent / "validibot_ops")
        for path in sorted(root.rglob("*.py"))
        if path != vocabulary
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if isinstance(node, ast.Set | ast.List | ast.Tuple)
        and sum(_is_status(element) for element in node.elts) >= 2
    ]
    assert not found, "sets of run statuses outside the vocabulary:\n" + "\n".join(found)
