"""A real Docker engine for tests: a private ``dockerd`` started and stopped by PID, or a given one.

The engine is private on purpose: ``cleanup_orphaned_containers`` removes every Validibot-labelled
container on the engine it is pointed at, so tests never borrow the host's default engine
unless ``VALIDIBOT_TEST_DOCKER_URL`` names one explicitly.

The private daemon runs without a bridge or iptables rules (``--bridge=none``), so several
test sessions on one machine can each start their own without fighting over ``docker0``;
test containers use ``network_mode="none"`` or ``"host"``.

No registry is reachable here, so images are built locally: a busybox rootfs packed into a tar
in memory and handed to ``docker import`` (:func:`import_busybox_image`).

In CI (``CI=true``) failing to get an engine fails the test; elsewhere the test is skipped with
a message saying what to install or start.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.services import in_ci

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
BUSYBOX = Path("/bin/busybox")
BUSYBOX_IMAGE = "validibot-test/busybox:latest"
# Applets the test images need; each becomes a symlink to busybox in the rootfs.
BUSYBOX_APPLETS = ("sh", "sleep", "true", "false", "echo", "cat", "env")
INSTALL_HINT = (
    "install Debian's docker.io and busybox-static (scripts/ci-system-deps.sh --install) and run "
    "the tests as root so they can start a private dockerd, or point VALIDIBOT_TEST_DOCKER_URL "
    "at an engine the tests may freely create and remove containers on"
)


@dataclass
class DockerEngine:
    """A reachable engine: its client URL and, when the tests started it, its process."""

    url: str
    process: subprocess.Popen | None = None
    root: Path | None = None
    data_root: Path | None = None
    """A data root kept between sessions (images, build cache), when one was asked for."""

    @property
    def log_path(self) -> Path | None:
        return self.root / "dockerd.log" if self.root else None

    def client(self):
        """A docker SDK client for this engine."""
        import docker

        return docker.DockerClient(base_url=self.url, timeout=60)


def engine_answers(url: str) -> bool:
    """True when a Docker engine at ``url`` answers a ping."""
    try:
        import docker

        client = docker.DockerClient(base_url=url, timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # any connection/API error means "not this one"
        return False


def wait_for_engine(url: str, process: subprocess.Popen, deadline_s: float) -> None:
    """Poll ``url`` until it answers; raise if ``process`` dies or the deadline passes."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dockerd exited with code {process.returncode}")
        if engine_answers(url):
            return
        time.sleep(0.2)
    raise TimeoutError(f"dockerd did not answer on {url} within {deadline_s}s")


def start_private_dockerd(data_root: Path | None = None) -> DockerEngine:
    """Start ``dockerd`` with its own data root, exec root, socket, pidfile and log.

    ``data_root`` keeps images and the build cache between sessions (the caller makes sure one
    daemon at a time uses it); by default the data root is temporary like everything else.
    """
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise RuntimeError("dockerd not found")
    if os.geteuid() != 0:
        raise RuntimeError("dockerd needs root and the tests are not running as root")
    # A short path: unix socket paths are limited to 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="vb-dockerd-", dir="/tmp"))
    url = f"unix://{root}/docker.sock"
    command = [
        dockerd,
        f"--data-root={data_root or root / 'data'}",
        f"--exec-root={root}/exec",
        f"--pidfile={root}/dockerd.pid",
        f"--host={url}",
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
        "--storage-driver=overlay2",
    ]
    log = (root / "dockerd.log").open("wb")
    process = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    engine = DockerEngine(url=url, process=process, root=root, data_root=data_root)
    try:
        wait_for_engine(url, process, START_TIMEOUT_S)
    except Exception as exc:
        tail = _log_tail(engine)
        stop_private_dockerd(engine)
        raise RuntimeError(f"{exc}; dockerd log tail:\n{tail}") from exc
    return engine


def stop_private_dockerd(engine: DockerEngine) -> None:
    """Stop the daemon the tests started, by its PID, then remove its directories."""
    process = engine.process
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)  # dockerd stops its containers and containerd
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)
    if engine.data_root is not None:
        _unmount_below(engine.data_root)
    if engine.root is not None:
        _unmount_below(engine.root)
        shutil.rmtree(engine.root, ignore_errors=True)


def _unmount_below(root: Path) -> None:
    """Unmount anything dockerd left mounted under ``root`` (a killed daemon can)."""
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    targets = [line.split()[1] for line in mounts if line.split()[1].startswith(str(root))]
    for target in sorted(targets, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], check=False, capture_output=True)


def _log_tail(engine: DockerEngine, lines: int = 20) -> str:
    if engine.log_path is None or not engine.log_path.exists():
        return "(no log)"
    return "\n".join(engine.log_path.read_text(errors="replace").splitlines()[-lines:])


def acquire_engine() -> DockerEngine:
    """The engine named by ``VALIDIBOT_TEST_DOCKER_URL``, else a private dockerd."""
    given = os.environ.get("VALIDIBOT_TEST_DOCKER_URL")
    if given:
        if engine_answers(given):
            return DockerEngine(url=given)
        raise RuntimeError(f"VALIDIBOT_TEST_DOCKER_URL={given} does not answer")
    return start_private_dockerd()


def busybox_rootfs() -> bytes:
    """A tar of a minimal root filesystem: static busybox plus symlinks for a few applets."""
    if not BUSYBOX.exists():
        raise RuntimeError(f"{BUSYBOX} not found (Debian package busybox-static)")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(str(BUSYBOX), arcname="bin/busybox")
        for applet in BUSYBOX_APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
        for folder in ("tmp", "proc", "sys", "dev", "etc"):
            entry = tarfile.TarInfo(folder)
            entry.type = tarfile.DIRTYPE
            entry.mode = 0o1777 if folder == "tmp" else 0o755
            tar.addfile(entry)
    return buffer.getvalue()


def import_busybox_image(client, reference: str = BUSYBOX_IMAGE) -> str:
    """``docker import`` the busybox rootfs as ``reference`` and return the reference."""
    repository, _, tag = reference.rpartition(":")
    client.api.import_image_from_data(busybox_rootfs(), repository=repository, tag=tag)
    return reference


def unavailable(message: str) -> None:
    """Fail in CI, skip elsewhere, always saying what to do."""
    if in_ci():
        pytest.fail(f"{message}; {INSTALL_HINT}", pytrace=False)
    pytest.skip(f"{message}; {INSTALL_HINT}")


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """A real Docker engine for the session; a private one is stopped by PID at the end."""
    try:
        engine = acquire_engine()
    except Exception as exc:
        unavailable(f"no Docker engine for the tests ({exc})")
    try:
        yield engine
    finally:
        stop_private_dockerd(engine)


@pytest.fixture(scope="session")
def docker_url(docker_engine: DockerEngine) -> str:
    """The client URL (``unix://...``) of the session's engine."""
    return docker_engine.url


@pytest.fixture(scope="session")
def docker_client(docker_engine: DockerEngine):
    """A docker SDK client bound to the session's engine."""
    client = docker_engine.client()
    yield client
    client.close()


@pytest.fixture(scope="session")
def busybox_image(docker_client) -> str:
    """A locally imported busybox image (no registry needed); returns its reference."""
    try:
        return import_busybox_image(docker_client)
    except Exception as exc:
        unavailable(f"could not build the busybox test image ({exc})")
