"""Local stand-ins for the base images docker-compose.yml names, for a host without a registry.

``docker-compose.yml`` and the Dockerfile use ``python:3.12-slim-bookworm``,
``postgres:16-bookworm`` and ``redis:7-bookworm``. Where no registry is reachable, this module
builds images under those names from Debian packages: ``mmdebstrap`` makes a minimal bookworm
root filesystem with the packages each one needs, and ``docker import`` turns it into an image.

What differs from the official images (so nobody mistakes a stand-in for one):

- ``python:3.12-slim-bookworm``: no Debian release ships Python 3.12, so the host's own
  CPython 3.12 (the interpreter running this module, e.g. pyenv's) is copied into ``/usr/local``.
  The host's extra CA certificates are trusted inside it (``SSL_CERT_FILE``, ``PIP_CERT``), so
  ``pip``/``uv`` in an image build reach PyPI through a TLS-inspecting proxy.
- ``postgres:16-bookworm``: Debian bookworm ships PostgreSQL **15**; a small entrypoint
  (:data:`POSTGRES_ENTRYPOINT`) honours ``POSTGRES_USER``/``POSTGRES_PASSWORD``/``POSTGRES_DB``
  and runs ``/docker-entrypoint-initdb.d`` once on an empty data directory, as the official one.
  ``docker import`` cannot set the official image's ``STOPSIGNAL SIGINT``; docker-compose.yml
  sets ``stop_signal: SIGINT`` itself.
- ``redis:7-bookworm``: Debian's redis-server 7.0, started with ``--protected-mode no`` as the
  official image is (the compose network is its only way in).

Each root filesystem is cached as a tar under ``$VALIDIBOT_COMPOSE_CACHE`` (default
``/var/tmp/validibot-compose``), keyed by a hash of its recipe (packages, hooks, image config,
the host's CA certificates and Python build), so only the first run on a machine pays for
``mmdebstrap``; an engine that already holds an image with the same key is left alone.

Run it by hand (as root, ``mmdebstrap`` from Debian) against the engine ``DOCKER_HOST`` names::

    scripts/compose-standins            # build/import the three stand-ins
    scripts/compose-standins --list     # what would be built, and the cache keys
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

CACHE_ENV = "VALIDIBOT_COMPOSE_CACHE"
DEFAULT_CACHE = Path("/var/tmp/validibot-compose")
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
KEY_LABEL = "org.validibot.standin-key"
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
MMDEBSTRAP_TIMEOUT_S = 1200

POSTGRES_ENTRYPOINT = r"""#!/bin/sh
# Stand-in for the official postgres image's entrypoint (Debian's PostgreSQL 15): on an empty
# data directory, initdb with POSTGRES_USER/POSTGRES_PASSWORD, create POSTGRES_DB, run
# /docker-entrypoint-initdb.d/*.sh and *.sql; then exec the command as the postgres user.
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
export PGDATA POSTGRES_USER POSTGRES_DB
as_postgres() { runuser -u postgres -- "$@"; }
if [ "${1:-}" = postgres ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
        pwfile=$(mktemp)
        printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
        chown postgres "$pwfile"
        as_postgres initdb -D "$PGDATA" --username="$POSTGRES_USER" --pwfile="$pwfile" \
            --auth-local=trust --auth-host=scram-sha-256 >/dev/null
        rm -f "$pwfile"
        echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
        echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
        as_postgres pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
        if [ "$POSTGRES_DB" != postgres ]; then
            as_postgres psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres \
                -c "CREATE DATABASE \"$POSTGRES_DB\"" >/dev/null
        fi
        for f in /docker-entrypoint-initdb.d/*; do
            case "$f" in
                *.sh) echo "initdb.d: running $f"; as_postgres sh "$f" ;;
                *.sql) echo "initdb.d: running $f"; as_postgres psql -v ON_ERROR_STOP=1 \
                    -U "$POSTGRES_USER" -d "$POSTGRES_DB" -f "$f" ;;
                *) ;;
            esac
        done
        as_postgres pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
        echo "postgres stand-in: initialised $PGDATA"
    fi
    exec runuser -u postgres -- "$@"
fi
exec "$@"
"""

REDIS_ENTRYPOINT = r"""#!/bin/sh
# Stand-in for the official redis image's entrypoint: protected mode off (the official build
# turns it off; the compose network is the only way in), run as the redis user in /data.
set -eu
if [ "${1:-}" = redis-server ]; then
    shift
    chown -R redis:redis /data
    exec runuser -u redis -- redis-server --protected-mode no "$@"
fi
exec "$@"
"""


@dataclass(frozen=True)
class Recipe:
    """One stand-in image: packages on top of minbase, hooks run on the root filesystem."""

    reference: str
    packages: tuple[str, ...]
    customize: tuple[str, ...] = ()
    """Shell commands run by mmdebstrap with the root filesystem as ``$1``."""
    changes: tuple[str, ...] = ()
    """Dockerfile instructions applied by ``docker import`` (ENV, CMD, ENTRYPOINT, ...)."""
    files: dict[str, str] = field(default_factory=dict)
    """Extra files: path inside the image -> content (executable), added at import time so
    an edit to an entrypoint does not rebuild the root filesystem."""
    inputs: tuple[str, ...] = ()
    """Host facts the image depends on beyond its text (hashed into the key)."""

    @property
    def slug(self) -> str:
        return self.reference.replace("/", "_").replace(":", "-")

    def rootfs_key(self) -> str:
        """Hash of what goes into the root filesystem (the cached tar's name)."""
        text = json.dumps(
            {
                "suite": SUITE,
                "mirror": MIRROR,
                "reference": self.reference,
                "packages": self.packages,
                "customize": self.customize,
                "inputs": self.inputs,
            },
            sort_keys=True,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def key(self) -> str:
        """Hash of the whole recipe: the root filesystem, the files and config on top."""
        text = json.dumps([self.rootfs_key(), self.files, self.changes], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def host_ca_files() -> list[Path]:
    return sorted(HOST_CA_DIR.glob("*.crt")) if HOST_CA_DIR.is_dir() else []


def _ca_fingerprint() -> str:
    digest = hashlib.sha256()
    for path in host_ca_files():
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def python_recipe() -> Recipe:
    """``python:3.12-slim-bookworm`` from the interpreter running this module."""
    if sys.version_info[:2] != (3, 12):
        raise RuntimeError(f"the python stand-in needs a Python 3.12 host, not {sys.version}")
    prefix = Path(sys.base_prefix)
    excludes = " ".join(
        f"--exclude={shlex.quote(p)}"
        for p in (
            "./lib/python3.12/test",
            "./lib/python3.12/idlelib",
            "./lib/python3.12/tkinter",
            "./lib/python3.12/site-packages/uv*",
            "./lib/python3.12/site-packages/_sandboxing*",
            "./bin/uv",
            "./bin/uvx",
            "*/__pycache__",
            "./lib/*.a",
            "./lib/python3.12/config-3.12-*/*.a",
        )
    )
    version = sysconfig.get_config_var("VERSION")
    copy = (
        f"tar -C {shlex.quote(str(prefix))} {excludes} -cf - . "
        '| tar -C "$1/usr/local" -xf - && '
        f'for f in "$1"/usr/local/bin/*; do [ -f "$f" ] && '
        f"sed -i '1s|^#!{prefix}/bin/python.*|#!/usr/local/bin/python{version}|' \"$f\"; done; "
        'chroot "$1" ldconfig'
    )
    trust = (
        'mkdir -p "$1/usr/local/share/ca-certificates" && '
        + "".join(
            f'cp {shlex.quote(str(p))} "$1/usr/local/share/ca-certificates/" && '
            for p in host_ca_files()
        )
        + 'chroot "$1" update-ca-certificates >/dev/null'
    )
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    return Recipe(
        reference="python:3.12-slim-bookworm",
        packages=(
            "ca-certificates",
            "netbase",
            "tzdata",
            "libssl3",
            "libffi8",
            "libsqlite3-0",
            "libreadline8",
            "libncursesw6",
            "libexpat1",
            "libuuid1",
            "libbz2-1.0",
            "liblzma5",
            "zlib1g",
            "libgdbm6",
            "libtirpc3",
        ),
        customize=(copy, trust),
        changes=(
            "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV LANG=C.UTF-8",
            f"ENV SSL_CERT_FILE={bundle}",
            f"ENV PIP_CERT={bundle}",
            'CMD ["python3"]',
        ),
        inputs=(f"python {sys.version} at {prefix}", f"ca {_ca_fingerprint()}"),
    )


def postgres_recipe() -> Recipe:
    """``postgres:16-bookworm`` stand-in: Debian's PostgreSQL 15 (bookworm has no 16)."""
    return Recipe(
        reference="postgres:16-bookworm",
        packages=("postgresql-15", "util-linux"),
        customize=(
            # Debian's package creates a "main" cluster; the entrypoint makes its own in PGDATA.
            'rm -rf "$1/var/lib/postgresql/15/main" "$1/etc/postgresql/15/main"',
            'mkdir -p "$1/docker-entrypoint-initdb.d" "$1/var/lib/postgresql/data"',
        ),
        changes=(
            "ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV LANG=C.UTF-8",
            "ENV PGDATA=/var/lib/postgresql/data",
            'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]',
            'CMD ["postgres"]',
        ),
        files={"/usr/local/bin/docker-entrypoint.sh": POSTGRES_ENTRYPOINT},
    )


def redis_recipe() -> Recipe:
    """``redis:7-bookworm`` stand-in: Debian's redis-server 7.0."""
    return Recipe(
        reference="redis:7-bookworm",
        packages=("redis-server", "util-linux"),
        customize=('mkdir -p "$1/data"',),
        changes=(
            "WORKDIR /data",
            'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]',
            'CMD ["redis-server"]',
        ),
        files={"/usr/local/bin/docker-entrypoint.sh": REDIS_ENTRYPOINT},
    )


def recipes() -> list[Recipe]:
    return [python_recipe(), postgres_recipe(), redis_recipe()]


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def rootfs_path(recipe: Recipe) -> Path:
    return cache_dir() / f"{recipe.slug}-{recipe.rootfs_key()}.tar"


def build_rootfs(recipe: Recipe) -> Path:
    """The recipe's root filesystem tar, made with mmdebstrap unless cached."""
    target = rootfs_path(recipe)
    if target.is_file():
        return target
    if shutil.which("mmdebstrap") is None:
        raise RuntimeError(
            "mmdebstrap not found: install Debian's mmdebstrap (scripts/ci-system-deps.sh)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"standin-{recipe.slug}-") as scratch:
        hooks = list(recipe.customize)
        hooks.append('rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin')
        partial = Path(scratch) / "rootfs.tar"
        command = [
            "mmdebstrap",
            "--mode=root",
            "--variant=minbase",
            "--quiet",
            f"--include={','.join(recipe.packages)}",
            *(f"--customize-hook={hook}" for hook in hooks),
            SUITE,
            str(partial),
            MIRROR,
        ]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=MMDEBSTRAP_TIMEOUT_S, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"mmdebstrap for {recipe.reference} exited {done.returncode}:\n"
                f"{done.stderr[-3000:]}"
            )
        tmp_target = target.with_suffix(".tar.partial")
        shutil.move(str(partial), tmp_target)
        tmp_target.rename(target)  # atomic: a killed build never leaves a half tar as cached
    return target


def engine_has(client, recipe: Recipe) -> bool:
    import docker.errors

    try:
        image = client.images.get(recipe.reference)
    except docker.errors.ImageNotFound:
        return False
    return (image.labels or {}).get(KEY_LABEL) == recipe.key()


def import_standin(client, recipe: Recipe) -> str:
    """Build (or reuse) the recipe's rootfs and import it into the engine under its name."""
    if engine_has(client, recipe):
        return f"{recipe.reference}: already in the engine"
    started = time.monotonic()
    cached = rootfs_path(recipe).is_file()
    tar = build_rootfs(recipe)
    repository, _, tag = recipe.reference.rpartition(":")
    changes = [*recipe.changes, f"LABEL {KEY_LABEL}={recipe.key()}"]
    with tempfile.TemporaryDirectory(prefix=f"standin-{recipe.slug}-") as scratch:
        source = with_files(tar, recipe.files, Path(scratch)) if recipe.files else tar
        client.api.import_image(src=str(source), repository=repository, tag=tag, changes=changes)
    origin = "cached rootfs" if cached else "mmdebstrap"
    return f"{recipe.reference}: imported from {origin} in {time.monotonic() - started:.0f}s"


def with_files(tar: Path, files: dict[str, str], scratch: Path) -> Path:
    """A copy of the rootfs tar with ``files`` in it (replacing entries of the same path:
    dockerd refuses a tar that names a path twice)."""
    replaced = {path.strip("/") for path in files}
    copy = scratch / tar.name
    with tarfile.open(tar) as source, tarfile.open(copy, mode="w") as target:
        for member in source:
            if member.name.removeprefix("./").strip("/") in replaced:
                continue
            target.addfile(member, source.extractfile(member) if member.isreg() else None)
        for path, content in files.items():
            data = content.encode()
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size = len(data)
            info.mode = 0o755
            info.mtime = int(time.time())
            target.addfile(info, io.BytesIO(data))
    return copy


def ensure_standins(client, selected: list[Recipe] | None = None) -> list[str]:
    """Make every stand-in present in the engine (in parallel); returns what was done."""
    chosen = selected if selected is not None else recipes()
    with ThreadPoolExecutor(max_workers=len(chosen)) as pool:
        return list(pool.map(lambda recipe: import_standin(client, recipe), chosen))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/compose-standins",
        description=(
            "Build local stand-ins for python:3.12-slim-bookworm, postgres:16-bookworm and "
            "redis:7-bookworm (from Debian packages, with mmdebstrap) and import them into the "
            "Docker engine DOCKER_HOST names, for docker compose on a host without a registry."
        ),
    )
    parser.add_argument("--list", action="store_true", help="print the images and cache keys")
    args = parser.parse_args(argv)
    if args.list:
        for recipe in recipes():
            state = "cached" if rootfs_path(recipe).is_file() else "not built"
            sys.stdout.write(
                f"{recipe.reference}\t{recipe.key()}\t{rootfs_path(recipe)} ({state})\n"
            )
        return 0
    import docker

    client = docker.from_env(timeout=600)
    for line in ensure_standins(client):
        sys.stdout.write(f"{line}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
