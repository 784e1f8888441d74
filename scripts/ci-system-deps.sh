#!/usr/bin/env bash
# System packages the tests need: Debian's docker.io (dockerd) and busybox-static (the rootfs of
# the test images, imported locally because no registry is reachable) for the Docker tests, and
# chromium for the UI test (Playwright drives /usr/bin/chromium; it never downloads a browser),
# curl and jq for the executed docs (tests/docs/test_executed_docs.py), mmdebstrap for the
# compose test's stand-in base images (tests/support/compose_standins.py).
# Installs only in CI (CI=true) or when asked (--install); a quick no-op when all are present.
set -euo pipefail

PACKAGES=(docker.io busybox-static chromium curl jq mmdebstrap)

have_all() {
    local installed
    installed=$(dpkg-query -W -f='${Status}\n' "${PACKAGES[@]}" 2>/dev/null | grep -c 'install ok installed')
    [ "$installed" -eq "${#PACKAGES[@]}" ] && command -v dockerd >/dev/null 2>&1 && [ -x /usr/bin/chromium ]
}

if have_all; then
    exit 0
fi

case "${CI:-}:${1:-}" in
    true:* | 1:* | yes:* | *:--install) ;;
    *)
        echo "ci-system-deps: ${PACKAGES[*]} not installed; run with --install (or CI=true)," \
            "or the Docker tests will skip" >&2
        exit 0
        ;;
esac

if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi

echo "ci-system-deps: installing ${PACKAGES[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# A stale package index is the usual reason an install fails: update once, then install.
$SUDO apt-get update -qq >&2
$SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >&2
