#!/usr/bin/env bash
# Run mixopt's checks: lint, format, type check, tests. Sets up .venv first if needed.
#   scripts/test.sh [pytest args...]     e.g. scripts/test.sh -m "not slow"
set -euo pipefail
cd "$(dirname "$0")/.."
# frameworks: the export tests load the exports with OLMo-core and torchtitan themselves
MIXOPT_EXTRAS=dev,frameworks scripts/setup.sh
echo "[test] ruff check" >&2
.venv/bin/ruff check .
echo "[test] ruff format --check" >&2
.venv/bin/ruff format --check .
echo "[test] mypy" >&2
.venv/bin/mypy
echo "[test] pytest" >&2
.venv/bin/python -m pytest -m "not gpu" "$@"
