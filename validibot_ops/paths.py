"""Where the checkout keeps the local instance: one place for the CLI verbs that find it."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LOCAL_HOME = REPO_ROOT / ".dagster_home"
"""The Dagster home `dev` and the demo use when ``DAGSTER_HOME`` is not set."""
LOCAL_INSTANCE_YAML = REPO_ROOT / "dagster.yaml"
"""The local instance config (SQLite, queued runs, one per task); production's is deploy/."""
LOCAL_WORKSPACE = REPO_ROOT / "workspace.local.yaml"
"""The one code location, ``validibot_ops``, as dev, the demo and the stock CLI load it."""
