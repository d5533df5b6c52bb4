#!/usr/bin/env bash
# The one test command: bash scripts/test.sh [pytest args...]
#
# Works on a fresh clone with only Python 3.11 and PyPI: creates .venv if missing,
# installs the project with its test extra (again only when pyproject.toml changed),
# then runs pytest on at most 2 workers (pytest-xdist). Extra arguments go to pytest,
# e.g. `bash scripts/test.sh -m db` or `bash scripts/test.sh tests/unit -x`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="$ROOT/.venv"
PY="$VENV/bin/python"

if [[ ! -x "$PY" ]]; then
    if command -v python3.11 >/dev/null 2>&1; then
        BASE_PY=python3.11
    else
        BASE_PY=python3
    fi
    echo "test.sh: creating .venv with $BASE_PY"
    "$BASE_PY" -m venv "$VENV"
fi

# Reinstall only when the dependency declaration changed: an editable install builds
# in an isolated environment that downloads setuptools, which is slow to repeat.
STAMP="$VENV/.yigongti-installed"
WANT="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$WANT" ]] \
    || ! "$PY" -c "import importlib.metadata as m; m.version('yigongti-fhir-adapter')" \
        >/dev/null 2>&1; then
    echo "test.sh: installing the project and its test extra into .venv"
    LOG="$VENV/install.log"
    if ! "$PY" -m pip install --quiet --disable-pip-version-check -e '.[test]' >"$LOG" 2>&1
    then
        cat "$LOG" >&2
        echo "test.sh: FAILED: could not install the project (log above, also in $LOG)" >&2
        exit 1
    fi
    echo "$WANT" >"$STAMP"
fi

# As many workers as cores, but at most 2 (the project's machines have 2 cores).
CORES="$(nproc 2>/dev/null || echo 1)"
WORKERS=$(( CORES < 2 ? CORES : 2 ))

set +e
"$PY" -m pytest -n "$WORKERS" "$@"
STATUS=$?
set -e

if [[ $STATUS -eq 5 ]]; then
    echo "test.sh: FAILED: pytest collected no tests (args: ${*:-none})" >&2
    exit 1
fi
exit $STATUS
