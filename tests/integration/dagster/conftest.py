"""Fixtures for tests that run real Dagster processes against Postgres and Redis."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.dagster_stack import DagsterStack


@pytest.fixture(scope="module")
def celery_stack(postgres_service, redis_service, tmp_path_factory):
    """Postgres instance (deploy/dagster.yaml), Redis broker, one worker per queue."""
    root = tmp_path_factory.mktemp("celery-stack")
    # Every process of the stack (workers included) finds the flaky task's marker here.
    extra_env = {"VALIDIBOT_TEST_FLAKY_MARKER": str(root / "flaky-marker")}
    with DagsterStack.create(root, executor="celery", extra_env=extra_env) as stack:
        stack.start_worker("default", name="default-worker")
        stack.start_worker("docker", name="docker-worker")
        yield stack


@pytest.fixture
def webhook():
    """A local alert webhook: ``(url, received)``, every POSTed JSON body in ``received``."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802  (http.server's naming)
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/alerts", received
    finally:
        server.shutdown()
        server.server_close()
