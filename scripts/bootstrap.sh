# Sourced by scripts/demo and scripts/test: find Python 3.12, get uv, install the locked deps.
# Everything the project needs is installed from pyproject.toml + uv.lock; nothing by hand.

# -P: a symlinked scripts/ (tests/docs runs the README from a view of the checkout) still
# syncs the real checkout, never a copy of its path.
cd -P "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
export UV_PYTHON_DOWNLOADS=never

find_python() {
    local candidate
    for candidate in "${VALIDIBOT_PYTHON:-}" python3.12 "$(command -v pyenv >/dev/null && pyenv root 2>/dev/null)/versions/3.12"*/bin/python3.12 /usr/bin/python3.12 /usr/local/bin/python3.12; do
        [ -n "$candidate" ] || continue
        if "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
            # The base interpreter, never a venv's python (PATH may already hold .venv/bin):
            # a different --python each time makes uv recreate .venv under running processes.
            "$candidate" -c 'import os, sys; print(os.path.realpath(sys._base_executable))'
            return 0
        fi
    done
    return 1
}

PYTHON=$(find_python) || { echo "bootstrap: Python 3.12 not found (set VALIDIBOT_PYTHON)" >&2; exit 1; }
if ! "$PYTHON" -m uv --version >/dev/null 2>&1; then
    echo "bootstrap: installing uv into $PYTHON" >&2
    "$PYTHON" -m pip install --quiet --disable-pip-version-check uv >&2 || exit 1
fi
"$PYTHON" -m uv sync --frozen --quiet --python "$PYTHON" >&2 || exit 1
export PATH="$PWD/.venv/bin:$PATH"
