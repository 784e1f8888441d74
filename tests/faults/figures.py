"""The suite's figures: each test appends what it injected and what it saw, one JSON line each.

``python -m tests.faults.report`` turns the lines into ``docs/reliability.md``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
FIGURES_DIR = REPO_ROOT / "test-artifacts" / "faults"
FIGURES_FILE = FIGURES_DIR / "figures.jsonl"


def reset() -> None:
    """Start a fresh record (the suite calls this once per session)."""
    FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    FIGURES_FILE.write_text("")


def _append(entry: dict[str, Any]) -> None:
    FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    with FIGURES_FILE.open("a") as fh:
        fh.write(json.dumps({"at": round(time.time(), 3), **entry}) + "\n")


def fault(
    name: str,
    *,
    survived: bool,
    outcome: str,
    guards: list[str],
    runs_stuck: int = 0,
    rows_lost: int = 0,
    rows_double: int = 0,
    seconds: float | None = None,
) -> None:
    """One injected fault: did the system come through, and at what cost."""
    _append(
        {
            "kind": "fault",
            "name": name,
            "survived": survived,
            "outcome": outcome,
            "guards": guards,
            "runs_stuck": runs_stuck,
            "rows_lost": rows_lost,
            "rows_double": rows_double,
            "seconds": None if seconds is None else round(seconds, 1),
        }
    )


def bad_input(name: str, *, rejected: bool, error: str, rows_changed: int = 0) -> None:
    """One malformed input: was it refused with a specific error, and did any row change."""
    _append(
        {
            "kind": "bad_input",
            "name": name,
            "rejected": rejected,
            "error": " ".join(error.split())[:200],
            "rows_changed": rows_changed,
        }
    )


def load(path: Path = FIGURES_FILE) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
