"""Docker-engine fixtures for this package (see tests/support/docker_engine.py)."""

from tests.support.docker_engine import (  # noqa: F401  (pytest finds fixtures by name)
    busybox_image,
    docker_client,
    docker_engine,
    docker_url,
)
