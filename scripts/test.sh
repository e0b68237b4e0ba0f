#!/usr/bin/env bash
# Run mixopt's checks: lint, format, type check, the docs, tests. Sets up .venv first if needed.
#   scripts/test.sh [pytest args...]     e.g. scripts/test.sh -m "not slow"
set -euo pipefail
cd "$(dirname "$0")/.."
# frameworks: the export tests load the exports with OLMo-core, torchtitan, datasets themselves
MIXOPT_EXTRAS=dev,frameworks scripts/setup.sh
# MosaicML streaming (the streaming export's MDS test) pins numpy<2.2 and transformers<5 and
# would pull a second torch: it goes, without its dependencies, into a folder of its own that
# only that test puts on its path (tests/mixopt/export/test_streaming.py)
streaming=.venv/extras/streaming
if [ ! -f "$streaming/streaming/__init__.py" ]; then
  echo "[test] installing mosaicml-streaming into $streaming" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
    --target "$streaming" mosaicml-streaming==0.13.0 brotli python-snappy cramjam xxhash zstd \
    catalogue 2>&1 | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
fi
echo "[test] ruff check" >&2
.venv/bin/ruff check .
echo "[test] ruff format --check" >&2
.venv/bin/ruff format --check .
echo "[test] mypy" >&2
.venv/bin/mypy
echo "[test] docs: mkdocs build --strict" >&2
PYTHONPATH=$PWD .venv/bin/mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
echo "[test] pytest" >&2
.venv/bin/python -m pytest -m "not gpu" "$@"
