"""cleanup_orphaned_containers against a real engine: exactly the orphaned containers go."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from validibot.core.maintenance import parse_summary
from validibot.submissions.models import Submission
from validibot.validations.containers import (
    MANAGED_LABEL,
    RUN_ID_LABEL,
    STARTED_AT_LABEL,
    TIMEOUT_LABEL,
    VALIDATOR_LABEL,
)
from validibot.validations.models import RunStatus, ValidationRun

pytestmark = [pytest.mark.services, pytest.mark.django_db]

GRACE_S = 60
TIMEOUT_S = 3600
# Marks every container this module makes, so teardown never touches anything else.
TEST_LABEL = "org.validibot-tests.session"
MISSING_RUN_ID = "987654321"


@dataclass(frozen=True)
class Case:
    """One container to create and whether a real (non --all) cleanup should remove it."""

    name: str
    run_status: str | None  # None: no run row; "missing": a run id with no row
    age: timedelta
    managed: bool = True
    running: bool = False
    orphaned: bool = False


CASES = (
    Case("terminal-run", RunStatus.SUCCEEDED, timedelta(minutes=10), running=True, orphaned=True),
    Case("failed-run", RunStatus.FAILED, timedelta(minutes=10), orphaned=True),
    Case("missing-run", "missing", timedelta(minutes=10), orphaned=True),
    Case("past-timeout", RunStatus.RUNNING, timedelta(hours=2), running=True, orphaned=True),
    Case("in-progress", RunStatus.RUNNING, timedelta(minutes=10), running=True),
    Case("pending", RunStatus.PENDING, timedelta(minutes=10)),
    Case("missing-run-within-grace", "missing", timedelta(seconds=5)),
    Case("terminal-run-within-grace", RunStatus.CANCELED, timedelta(seconds=5)),
    Case("unlabelled-terminal-run", RunStatus.SUCCEEDED, timedelta(hours=5), managed=False),
)


def make_run(status: str | None) -> str:
    """A validation run row with ``status`` and its id, or an id with no row."""
    if status == "missing":
        return MISSING_RUN_ID
    submission = Submission.objects.create(name="container cleanup", content="{}")
    return str(ValidationRun.objects.create(submission=submission, status=status).pk)


def labels_for(case: Case, run_id: str, now: datetime, session: str) -> dict[str, str]:
    """Validibot labels as the validator launcher writes them (plus our test marker)."""
    labels = {
        RUN_ID_LABEL: run_id,
        VALIDATOR_LABEL: "json-schema",
        STARTED_AT_LABEL: (now - case.age).isoformat(),
        TIMEOUT_LABEL: str(TIMEOUT_S),
        TEST_LABEL: session,
    }
    if case.managed:
        labels[MANAGED_LABEL] = "true"
    return labels


@pytest.fixture
def containers(docker_client, busybox_image) -> Iterator[dict[str, str]]:
    """One real container per case (name -> container id); all ours are removed afterwards."""
    session = uuid.uuid4().hex[:8]
    now = timezone.now()
    made: dict[str, str] = {}
    for case in CASES:
        labels = labels_for(case, make_run(case.run_status), now, session)
        kwargs = {"labels": labels, "name": f"vb-{case.name}-{session}", "network_mode": "none"}
        if case.running:
            container = docker_client.containers.run(
                busybox_image, ["sleep", "600"], detach=True, **kwargs
            )
        else:
            container = docker_client.containers.create(busybox_image, ["true"], **kwargs)
        made[case.name] = container.id
    yield made
    for container in docker_client.containers.list(
        all=True, filters={"label": f"{TEST_LABEL}={session}"}
    ):
        container.remove(force=True)


@pytest.fixture
def engine_settings(settings, docker_url):
    """Point the command at the test engine the way production does: VALIDIBOT_DOCKER_URL."""
    settings.VALIDIBOT_DOCKER_URL = docker_url
    return settings


def cleanup(*args: str) -> dict:
    """Run the command in-process and return its one-line JSON summary."""
    out = StringIO()
    call_command("cleanup_orphaned_containers", "--grace-period", str(GRACE_S), *args, stdout=out)
    summary = parse_summary(out.getvalue())
    assert summary is not None, out.getvalue()
    return summary


def surviving(docker_client, made: dict[str, str]) -> set[str]:
    """Names of the cases whose container still exists on the engine."""
    present = {c.id for c in docker_client.containers.list(all=True)}
    return {name for name, container_id in made.items() if container_id in present}


ORPHANS = {case.name for case in CASES if case.orphaned}
MANAGED = {case.name for case in CASES if case.managed}


@pytest.mark.usefixtures("engine_settings")
def test_removes_exactly_the_orphans_and_a_second_run_is_a_no_op(docker_client, containers):
    summary = cleanup()

    assert summary["status"] == "completed"
    assert surviving(docker_client, containers) == set(containers) - ORPHANS
    assert summary["counts"]["removed"] == len(ORPHANS)
    assert summary["counts"]["examined"] == len(MANAGED)  # unlabelled never even examined
    assert summary["counts"]["errors"] == 0

    again = cleanup()
    assert again["counts"]["removed"] == 0
    assert again["counts"]["examined"] == len(MANAGED - ORPHANS)
    assert surviving(docker_client, containers) == set(containers) - ORPHANS


@pytest.mark.usefixtures("engine_settings")
def test_dry_run_reports_the_orphans_and_removes_nothing(docker_client, containers):
    out = StringIO()
    call_command(
        "cleanup_orphaned_containers", "--grace-period", str(GRACE_S), "--dry-run", stdout=out
    )

    summary = parse_summary(out.getvalue())
    assert summary["dry_run"] is True
    assert summary["counts"]["removed"] == len(ORPHANS)
    assert surviving(docker_client, containers) == set(containers)
    for name in ORPHANS:
        assert f"would remove vb-{name}-" in out.getvalue()


@pytest.mark.usefixtures("engine_settings")
def test_all_removes_every_managed_container_and_no_unlabelled_one(docker_client, containers):
    summary = cleanup("--all")

    assert summary["counts"]["removed"] == len(MANAGED)
    assert surviving(docker_client, containers) == set(containers) - MANAGED


def test_unreachable_engine_is_reported_not_fatal_unless_required(settings, tmp_path):
    settings.VALIDIBOT_DOCKER_URL = f"unix://{tmp_path}/no-engine.sock"

    summary = cleanup()
    assert summary["status"] == "completed"
    assert summary["counts"]["engine_unreachable"] == 1

    with pytest.raises(CommandError, match="Docker engine not reachable"):
        cleanup("--require-engine")
