"""The README's local commands and docs/operations.md's shell blocks, run verbatim.

Every ```bash block runs, in order, in one shell per document, from a view of the checkout
(symlinks, so files the commands write stay out of the repository) with no virtualenv on PATH
(the page's first block exports it, as a reader does) and a temporary DAGSTER_HOME and SQLite
database. The one
substitution is the port: 3000 in ``127.0.0.1:3000`` and ``--port 3000`` becomes the free port
the test serves on. A block
after ``<!-- not-executed: reason -->`` is skipped and listed; the block after
``<!-- runs-in-background: ... -->`` (``validibot-ops dev``) is started in the background and
waited for. A block fails the test when it exits non-zero or prints a GraphQL error.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.dagster_stack import REPO_ROOT, VENV_BIN, ManagedProcess, free_port
from tests.support.dev_server import DevServer, bare_env
from tests.support.services import wait_until

DOCS = [REPO_ROOT / "README.md", REPO_ROOT / "docs" / "operations.md"]
DOCUMENTED_PORT = ("127.0.0.1:3000", "--port 3000")
_BLOCK = re.compile(
    # The reason stays on its line: with DOTALL a lazy ``.*?`` ran from the page's prose mention
    # of the marker to the next real one, silently skipping every block in between.
    r"(?:<!-- (?P<mark>not-executed|runs-in-background):?[ \t]*(?P<reason>[^\n]*?) -->\n)?"
    r"^```(?P<lang>bash|sh|shell)\n(?P<code>.*?)^```",
    re.DOTALL | re.MULTILINE,
)
# What a failed GraphQL call prints although curl exits 0 (checked on blocks calling /graphql).
_GRAPHQL_ERROR = re.compile(r'"errors":|"__typename":"\w*Error"|"message":|^null$', re.MULTILINE)


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int
    code: str
    mark: str | None
    reason: str

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(REPO_ROOT)}:{self.line}"


def shell_blocks(doc: Path) -> list[Block]:
    text = doc.read_text(encoding="utf-8")
    return [
        Block(
            doc,
            text.count("\n", 0, m.start("code")) + 1,
            m.group("code"),
            m.group("mark"),
            m.group("reason") or "",
        )
        for m in _BLOCK.finditer(text)
    ]


def with_port(code: str, port: int) -> str:
    """The documented substitution, and the only one: port 3000 becomes ``port``."""
    for documented in DOCUMENTED_PORT:
        code = code.replace(documented, documented.replace("3000", str(port)))
    return code


NOT_EXECUTED = {
    # first line of the block -> why it cannot run on a laptop
    "scripts/test": "runs the whole suite, this test included",
    "validibot-ops sync-schedules -w workspace.yaml": "production: needs the code-server host",
    "dagster job launch -w workspace.yaml -j clear_sessions --tags "
    """'{"validibot/trigger": "cli"}'""": "production: needs the code-server host",
    "curl -s -X POST https://validibot.example.com/api/v1/scheduled/clear_sessions/ \\": (
        "needs the Django web service and a token (test_trigger_live.py sends the same)"
    ),
}
"""Every block the docs mark ``<!-- not-executed: ... -->``; a new one must be listed here."""


def test_blocks_not_executed_are_listed_and_say_why():
    skipped = [b for doc in DOCS for b in shell_blocks(doc) if b.mark == "not-executed"]
    assert all(b.reason.strip() for b in skipped), [b.where for b in skipped if not b.reason]
    firsts = {b.code.splitlines()[0].split("  #")[0].strip() for b in skipped}
    assert firsts == set(NOT_EXECUTED)
    executed = [b for doc in DOCS for b in shell_blocks(doc) if b.mark != "not-executed"]
    assert len(executed) >= 10, "the docs lost their shell blocks, or the parser broke"


def _checkout_view(root: Path) -> Path:
    """Symlinks to the checkout's top-level entries; ``.dagster_home`` is the test's own."""
    view = root / "checkout"
    view.mkdir()
    for entry in REPO_ROOT.iterdir():
        if entry.name not in {".dagster_home", ".git", "db.sqlite3", "media", "jobs.json"}:
            (view / entry.name).symlink_to(entry)
    return view


def _run_script(blocks: list[Block], port: int, view: Path, env: dict[str, str]) -> None:
    script = ["set -euo pipefail"]
    for index, block in enumerate(blocks):
        script += [f"printf '\\n@@block {index}@@\\n'", with_port(block.code, port)]
    result = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=view,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    outputs = re.split(r"^@@block (\d+)@@$", result.stdout, flags=re.MULTILINE)[1:]
    by_block = {int(i): out for i, out in zip(outputs[::2], outputs[1::2], strict=True)}
    last = max(by_block, default=0)
    if result.returncode != 0:
        pytest.fail(
            f"{blocks[last].where} exited {result.returncode}:\n{blocks[last].code}\n--- out\n"
            f"{by_block.get(last, '')[-3000:]}\n--- err\n{result.stderr[-3000:]}"
        )
    for index, out in by_block.items():
        if "/graphql" in blocks[index].code:
            error = _GRAPHQL_ERROR.search(out)
            assert not error, f"{blocks[index].where} printed an error:\n{out}"


@pytest.mark.services
@pytest.mark.subprocess
@pytest.mark.timeout(1800)
def test_the_docs_run_verbatim_against_validibot_ops_dev(tmp_path):
    missing = [tool for tool in ("bash", "curl", "jq") if shutil.which(tool) is None]
    if missing and not os.environ.get("CI"):
        pytest.skip(f"the docs' commands need {', '.join(missing)} (Debian: apt-get install jq)")
    assert not missing, f"scripts/ci-system-deps.sh should have installed {missing}"
    view = _checkout_view(tmp_path)
    env = {**bare_env(tmp_path), "DAGSTER_HOME": str(view / ".dagster_home")}
    # A newcomer's shell: no virtualenv on PATH; the page's first block exports it (issue 28).
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != str(VENV_BIN))
    port = free_port()
    server: DevServer | None = None
    try:
        for doc in DOCS:
            pending: list[Block] = []
            for block in shell_blocks(doc):
                if block.mark == "not-executed":
                    continue
                if block.mark == "runs-in-background":
                    _run_script(pending, port, view, env)
                    pending = []
                    server = _start_in_background(block, port, view, env, tmp_path)
                    continue
                pending.append(block)
            assert server is not None, "the README no longer starts validibot-ops dev"
            _run_script(pending, port, view, {**env, "VALIDIBOT_DAGSTER_URL": server.url})
    finally:
        if server is not None:
            server.stop()


def _start_in_background(
    block: Block, port: int, view: Path, env: dict[str, str], root: Path
) -> DevServer:
    log = root / "background.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            ["bash", "-c", with_port(block.code, port)],
            cwd=view,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = DevServer(ManagedProcess("dev", popen, log), port, env, root)
    wait_until(lambda: server.repository() is not None, 180, interval=1, what=block.where)
    return server
