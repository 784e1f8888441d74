"""verify_validator_deployments against real HTTP servers on loopback (http.server threads)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management.base import CommandError

from validibot.core.runner import run_task_command


class Validator(BaseHTTPRequestHandler):
    """Answers GET /<status> with that status; records every path it was asked for."""

    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802  (http.server's naming)
        type(self).seen.append(self.path)
        status = int(self.path.strip("/").split("/")[0] or 200)
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet: the test output is the command's."""


@pytest.fixture
def validator() -> Iterator[str]:
    """Base URL of a fake validator deployment on 127.0.0.1."""
    Validator.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Validator)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_all_deployments_answer(run, settings, validator):
    settings.VALIDIBOT_VALIDATOR_DEPLOYMENTS = {
        "energyplus": f"{validator}/200/health",
        "fmu": f"{validator}/204",
    }

    result = run("verify_validator_deployments")

    assert result.counts == {"checked": 2, "healthy": 2, "down": 0}
    assert result.summary["down"] == []
    assert sorted(Validator.seen) == ["/200/health", "/204"]


def test_a_down_deployment_is_counted_named_and_fails_the_run(
    run, settings, validator, closed_port
):
    settings.VALIDIBOT_VALIDATOR_DEPLOYMENTS = {
        "energyplus": f"{validator}/200",
        "fmu": f"{validator}/503",
        "xml": f"http://user:s3cret@127.0.0.1:{closed_port}/health",
    }

    summary = run_task_command("verify_validator_deployments")

    assert summary["status"] == "failed"
    assert summary["counts"] == {"checked": 3, "healthy": 1, "down": 2}
    assert summary["down"] == ["fmu", "xml"]
    assert "2 validator deployment(s) down: fmu, xml" in summary["error"]
    assert "s3cret" not in repr(summary)
    with pytest.raises(CommandError, match="down: fmu, xml"):
        run("verify_validator_deployments")


def test_a_slow_deployment_is_down_after_the_timeout(settings):
    # A listening socket that never answers: the probe must give up, not hang the run.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        settings.VALIDIBOT_VALIDATOR_CHECK_TIMEOUT_SECONDS = 0.2
        settings.VALIDIBOT_VALIDATOR_DEPLOYMENTS = {
            "slow": f"http://127.0.0.1:{silent.getsockname()[1]}/"
        }
        summary = run_task_command("verify_validator_deployments")
    assert summary["counts"]["down"] == 1
    assert summary["down"] == ["slow"]


def test_dry_run_contacts_nothing(run, settings, validator):
    settings.VALIDIBOT_VALIDATOR_DEPLOYMENTS = {"energyplus": f"{validator}/500"}

    result = run("verify_validator_deployments", "--dry-run")

    assert result.summary["status"] == "completed"
    assert result.counts == {"checked": 1, "healthy": 0, "down": 0}
    assert Validator.seen == []


def test_none_configured_says_so(run, settings):
    settings.VALIDIBOT_VALIDATOR_DEPLOYMENTS = {}
    result = run("verify_validator_deployments")
    assert result.counts == {"checked": 0, "healthy": 0, "down": 0}
    assert "no validator deployments configured" in result.stdout


def test_a_url_without_a_scheme_is_refused_naming_the_setting(run, settings):
    settings.VALIDIBOT_VALIDATOR_DEPLOYMENTS = {"fmu": "validator-fmu.internal/health"}
    with pytest.raises(CommandError, match="VALIDIBOT_VALIDATOR_DEPLOYMENTS: the URL of fmu"):
        run("verify_validator_deployments")
