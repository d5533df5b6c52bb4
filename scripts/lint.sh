#!/usr/bin/env bash
# Lint gate: ruff check and ruff format --check over the repository.
# Uses the .venv that scripts/test.sh creates (run that first on a fresh clone).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [[ ! -x .venv/bin/ruff ]]; then
    bash scripts/test.sh --collect-only -q >/dev/null  # creates .venv with the test extra
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
