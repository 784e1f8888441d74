"""cleanup_orphaned_containers: no engine (report or fail), the orphan rules on a fake engine.

A later issue runs this against a real Docker engine; here a small fake stands in for the SDK
client so the selection rules are tested exactly.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import count
from pathlib import Path

import docker
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.factories import ValidationRunFactory
from tests.validibot.conftest import NOW
from validibot.core.maintenance import parse_summary
from validibot.validations.containers import (
    MANAGED_LABEL,
    RUN_ID_LABEL,
    STARTED_AT_LABEL,
    TIMEOUT_LABEL,
    ContainerInfo,
    orphan_reason,
)
from validibot.validations.models import TERMINAL, RunStatus

pytestmark = pytest.mark.django_db

MISSING_RUN_ID = "987654321"
_ids = count(1)


@pytest.fixture
def dead_engine(settings, tmp_path: Path) -> str:
    """Point the command at a Docker socket nobody listens on."""
    settings.VALIDIBOT_DOCKER_URL = f"unix://{tmp_path}/no-docker.sock"
    return settings.VALIDIBOT_DOCKER_URL


def test_unreachable_engine_is_reported_and_not_an_error(run, dead_engine):
    result = run("cleanup_orphaned_containers")

    assert result.summary["status"] == "completed"
    assert result.counts == {
        "examined": 0,
        "removed": 0,
        "kept": 0,
        "errors": 0,
        "engine_unreachable": 1,
    }
    assert "Docker engine not reachable" in result.stdout
    assert "nothing removed" in result.stdout


def test_unreachable_engine_fails_clearly_when_required(dead_engine):
    out = io.StringIO()

    with pytest.raises(CommandError, match="Docker engine not reachable"):
        call_command(
            "cleanup_orphaned_containers", "--require-engine", stdout=out, stderr=io.StringIO()
        )

    summary = parse_summary(out.getvalue())
    assert summary["status"] == "failed"
    assert "Docker engine not reachable" in summary["error"]


def test_require_engine_setting_fails_the_run_naming_the_socket(settings, dead_engine):
    settings.VALIDIBOT_CONTAINERS_REQUIRE_ENGINE = True
    out = io.StringIO()

    with pytest.raises(CommandError, match="VALIDIBOT_CONTAINERS_REQUIRE_ENGINE") as raised:
        call_command("cleanup_orphaned_containers", stdout=out, stderr=io.StringIO())

    assert dead_engine in str(raised.value)
    assert parse_summary(out.getvalue())["status"] == "failed"


@dataclass
class FakeContainer:
    """The slice of ``docker.models.containers.Container`` the command uses."""

    name: str
    labels: dict[str, str]
    id: str = field(default_factory=lambda: f"{next(_ids):064x}")
    attrs: dict = field(default_factory=lambda: {"Created": "2026-11-25T11:00:00.123456789Z"})
    fail_removal: bool = False
    removed: bool = False

    def remove(self, force: bool = False) -> None:
        if self.fail_removal:
            raise docker.errors.APIError("removal of container failed: device busy")
        assert force, "a running validator container must be force-removed"
        self.removed = True


class FakeEngine:
    """A ``docker.DockerClient`` stand-in that honours the label filter like the engine does."""

    def __init__(self, containers: list[FakeContainer]) -> None:
        self.all = containers
        self.containers = self

    def ping(self) -> bool:
        return True

    def list(self, all: bool = False, filters: dict | None = None) -> list[FakeContainer]:  # noqa: A002  (the SDK's keyword)
        key, _, value = (filters or {}).get("label", "").partition("=")
        return [c for c in self.all if not c.removed and c.labels.get(key) == value]


def managed(name: str, run_id: str | None, started_ago: timedelta, timeout: int = 1800):
    labels = {
        MANAGED_LABEL: "true",
        STARTED_AT_LABEL: (NOW - started_ago).isoformat(),
        TIMEOUT_LABEL: str(timeout),
    }
    if run_id is not None:
        labels[RUN_ID_LABEL] = run_id
    return FakeContainer(name=name, labels=labels)


def run_id(status: str) -> str:
    return str(ValidationRunFactory(status=status).pk)


@pytest.fixture
def engine(monkeypatch, settings) -> FakeEngine:
    """A fake engine holding one container per rule, plus one that is not ours."""
    fake = FakeEngine(
        [
            managed("finished", run_id(RunStatus.SUCCEEDED), timedelta(minutes=10)),
            managed("active", run_id(RunStatus.RUNNING), timedelta(minutes=10)),
            managed("overdue", run_id(RunStatus.RUNNING), timedelta(minutes=36)),
            managed("no-run", MISSING_RUN_ID, timedelta(minutes=10)),
            managed("young-no-run", MISSING_RUN_ID, timedelta(minutes=1)),
            FakeContainer(name="postgres", labels={"com.docker.compose.service": "db"}),
        ]
    )
    settings.VALIDIBOT_DOCKER_URL = "tcp://fake-engine:2375"
    monkeypatch.setattr(docker, "DockerClient", lambda base_url: fake)
    return fake


def removed(engine: FakeEngine) -> set[str]:
    return {c.name for c in engine.all if c.removed}


def test_removes_exactly_the_orphans(run, engine):
    result = run("cleanup_orphaned_containers")

    assert removed(engine) == {"finished", "overdue", "no-run"}
    assert result.counts == {
        "examined": 5,
        "removed": 3,
        "kept": 2,
        "errors": 0,
        "engine_unreachable": 0,
    }
    assert "its validation run is succeeded" in result.stdout
    assert "its validation run does not exist" in result.stdout
    assert "older than its timeout (1800s) plus grace (300s)" in result.stdout


def test_second_run_is_a_no_op(run, engine):
    run("cleanup_orphaned_containers")

    assert run("cleanup_orphaned_containers").counts["removed"] == 0
    assert removed(engine) == {"finished", "overdue", "no-run"}


def test_dry_run_removes_nothing(run, engine):
    result = run("cleanup_orphaned_containers", "--dry-run")

    assert removed(engine) == set()
    assert result.counts["removed"] == 3
    assert result.stdout.count("would remove") == 3


def test_all_removes_every_managed_container_and_nothing_else(run, engine):
    result = run("cleanup_orphaned_containers", "--all")

    assert removed(engine) == {"finished", "active", "overdue", "no-run", "young-no-run"}
    assert result.counts["removed"] == 5


def test_grace_period_option(run, engine):
    run("cleanup_orphaned_containers", "--grace-period=0")

    assert "young-no-run" in removed(engine)


def test_one_failed_removal_does_not_stop_the_others(engine):
    next(c for c in engine.all if c.name == "finished").fail_removal = True
    out, err = io.StringIO(), io.StringIO()

    with pytest.raises(CommandError, match="1 container"):
        call_command("cleanup_orphaned_containers", stdout=out, stderr=err)

    assert removed(engine) == {"overdue", "no-run"}
    summary = parse_summary(out.getvalue())
    assert summary["status"] == "failed"
    assert summary["counts"]["errors"] == 1
    assert "could not remove finished" in err.getvalue()


@pytest.mark.parametrize(
    ("age_minutes", "status", "expected"),
    [
        (4, None, None),  # within grace: its run row may not be committed yet
        (4, RunStatus.SUCCEEDED, None),
        (6, None, "its validation run does not exist"),
        (6, RunStatus.FAILED, "its validation run is failed"),
        (6, RunStatus.RUNNING, None),
        (35, RunStatus.RUNNING, None),  # exactly timeout + grace: not yet
        (36, RunStatus.RUNNING, "older than its timeout (1800s) plus grace (300s)"),
    ],
)
def test_orphan_reason(age_minutes, status, expected):
    info = ContainerInfo("c" * 64, "v", "1", NOW - timedelta(minutes=age_minutes), 1800)

    assert orphan_reason(info, status, TERMINAL, NOW, grace=300) == expected


def test_container_without_a_started_label_falls_back_to_created_time():
    info = ContainerInfo.from_labels("c" * 64, "v", {}, "2026-11-25T11:00:00.123456789Z")

    assert info.started_at == NOW.replace(hour=11, microsecond=123456)
    assert (info.run_id, info.timeout_seconds) == (None, 1800)
