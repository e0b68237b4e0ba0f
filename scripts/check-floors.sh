#!/usr/bin/env bash
# The dependency floors, tested: a fresh venv with exactly the lowest release pyproject.toml
# allows of every core dependency (scripts/floors.py), mixopt installed without dependencies,
# then the check that `import mixopt` stays light and the core tests. CI runs it (.ci/run).
#   scripts/check-floors.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m[floors]\033[0m %s\n' "$*" >&2; }

venv=${FLOORS_VENV:-.venv-floors}
PYTHON=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  say "creating $venv"
  "$PYTHON" -m venv "$venv"
fi
mapfile -t pins < <("$venv/bin/python" scripts/floors.py)
say "installing the floors: ${pins[*]}"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" --only-binary :all: "${pins[@]}" pytest hypothesis httpx 2>&1 \
  | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
"${pip[@]}" --no-deps -e . 2>&1 \
  | grep -v "is ignored: it is neither a file nor a directory" >&2 || true

# the floors really are what got installed (pip must not have resolved anything higher)
"$venv/bin/python" - "${pins[@]}" <<'PY'
import sys
from importlib.metadata import version

def release(text):
    parts = [int(p) for p in text.split("+")[0].split(".") if p.isdigit()]
    while parts and parts[-1] == 0:
        parts.pop()
    return parts

wrong = []
for pin in sys.argv[1:]:
    name, floor = pin.split("==")
    if release(version(name)) != release(floor):
        wrong.append(f"{name} {version(name)} (floor {floor})")
if wrong:
    sys.exit("not at their floors: " + ", ".join(wrong))
PY

# the core is light: importing mixopt and the CLI loads no optional package
"$venv/bin/python" - <<'PY'
import sys

import mixopt
import mixopt.cli.main  # noqa: F401

heavy = sorted(m for m in ("torch", "ray", "mlflow", "botorch", "lightgbm", "fastapi", "plotly")
               if m in sys.modules)
if heavy:
    sys.exit(f"import mixopt loaded {heavy}")
print(f"[floors] mixopt {mixopt.__version__} imports light", file=sys.stderr)
PY

say "core tests at the floors"
# the core's tests: spec, space, sampling, verdicts, runs tables, the predictors that need no
# BoTorch (gp and auto/ensemble, whose candidates include the GP, need the bo extra), the data
# stage (clustering uses the embeddings extra), job directories, exports and their units
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider -m "not slow and not gpu" \
  -k "not gp and not auto and not ensemble and not cluster" \
  tests/mixopt/test_space.py tests/mixopt/test_sampling.py tests/mixopt/test_spec.py \
  tests/mixopt/test_verdict.py tests/mixopt/test_runs_table.py tests/mixopt/test_atomic.py \
  tests/mixopt/predictors tests/mixopt/data tests/mixopt/job \
  tests/mixopt/export/test_weights.py tests/mixopt/export/test_mixture.py "$@"
