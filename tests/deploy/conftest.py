"""The deployment files, parsed once: compose, launcher overlay, env example, Dockerfile."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
LAUNCHER_OVERLAY = ROOT / "deploy" / "docker-compose.docker-run-launcher.yml"
ROOT_INSTANCE = ROOT / "deploy" / "dagster.yaml"  # the production instance config
LAUNCHER_INSTANCE = ROOT / "deploy" / "dagster.docker-run-launcher.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
# Where the Dockerfile puts the project inside the image (WORKDIR).
IMAGE_WORKDIR = "/app"

_ENV_LINE = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")


def load_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def env_example() -> dict[str, bool]:
    """Every variable .env.example documents -> whether it is set (uncommented)."""
    documented: dict[str, bool] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = _ENV_LINE.match(line.strip())
        if match:
            documented[match.group(2)] = documented.get(match.group(2), False) or not match.group(1)
    return documented


def dockerfile_env() -> set[str]:
    """Variables the Dockerfile sets with ENV (so every container has them)."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    names: set[str] = set()
    for line in text.splitlines():
        if line.strip().startswith("ENV "):
            names |= set(re.findall(r"([A-Z][A-Z0-9_]*)=", line))
    return names


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


@pytest.fixture(scope="session")
def overlay() -> dict[str, Any]:
    return load_yaml(LAUNCHER_OVERLAY)


@pytest.fixture(scope="session")
def services(compose) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="session")
def app_image(compose) -> str:
    """The one image every Validibot service runs (the service that builds it names it)."""
    images = {s["image"] for s in compose["services"].values() if "build" in s}
    assert len(images) == 1, f"services build more than one image: {images}"
    return images.pop()


@pytest.fixture(scope="session")
def app_services(services, app_image) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services.items() if s.get("image") == app_image}
