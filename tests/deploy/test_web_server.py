"""The compose `web` command really serves the app: gunicorn + config.wsgi, refusing anonymous
triggers. (The trigger's full behaviour is tested in tests/validibot/operations/.)"""

from __future__ import annotations

import os
import subprocess
import urllib.error
import urllib.request

import pytest
import yaml

from tests.support.dagster_stack import REPO_ROOT, VENV_BIN, ManagedProcess, free_port
from tests.support.services import wait_until

pytestmark = [pytest.mark.subprocess, pytest.mark.timeout(120)]


def test_gunicorn_serves_the_trigger_api_and_it_requires_a_token(tmp_path):
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    command = compose["services"]["web"]["command"]
    assert command[:2] == ["gunicorn", "config.wsgi:application"]
    port = free_port()
    argv = [
        str(VENV_BIN / "gunicorn"),
        "config.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
    ]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("VALIDIBOT_", "DJANGO_"))},
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "VALIDIBOT_TRIGGER_TOKEN": "a-token-for-this-test-only",
    }
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    proc = ManagedProcess("gunicorn", popen, log)
    try:
        url = f"http://127.0.0.1:{port}/api/v1/scheduled/clear_sessions/"

        def status() -> int | None:
            assert proc.alive(), proc.log()[-2000:]
            request = urllib.request.Request(url, data=b"{}", method="POST")
            try:
                with urllib.request.urlopen(request, timeout=3) as resp:  # noqa: S310
                    return resp.status
            except urllib.error.HTTPError as exc:
                return exc.code
            except OSError:
                return None

        wait_until(lambda: status() is not None, 60, interval=0.5, what="gunicorn answering")
        assert status() == 401
    finally:
        proc.stop()
