#!/usr/bin/env bash
# Set up mixopt in .venv at the repository root.
#
#   scripts/setup.sh                 # venv + torch + mixopt (editable) with its dev tools
#   scripts/setup.sh --demo-corpus   # ... and the demo corpus (Debian text packages where apt
#                                    #     and root are there; stand-in text otherwise)
#   MIXOPT_EXTRAS=dev,frameworks scripts/setup.sh   # other extras (scripts/test.sh uses these)
#
# torch: an existing install in .venv is kept; with an NVIDIA GPU the default (CUDA) build is
# installed; otherwise the CPU build (the wheel on this machine's disk when there is one).
set -euo pipefail
cd "$(dirname "$0")/.."

demo_corpus=0
for arg in "$@"; do
  case "$arg" in
    --demo-corpus) demo_corpus=1 ;;
    *) echo "usage: scripts/setup.sh [--demo-corpus]" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "mixopt needs Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
# pip_quiet ARGS...: install, showing pip's output only when it fails
pip_quiet() {
  local log
  log=$(mktemp)
  if ! "${pip[@]}" "$@" >"$log" 2>&1; then
    grep -v "is ignored: it is neither a file nor a directory" "$log" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
}

if .venv/bin/python -c 'import torch' 2>/dev/null; then
  say "torch $(.venv/bin/python -c 'import torch; print(torch.__version__)') already installed"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  say "NVIDIA GPU found: installing the CUDA build of torch"
  "${pip[@]}" torch
elif "${pip[@]}" --no-index --no-deps torch==2.13.0 2>/dev/null; then
  say "installed the local CPU build of torch 2.13.0"
  pip_quiet torch==2.13.0   # its dependencies
else
  say "installing the CPU build of torch from the PyTorch index"
  "${pip[@]}" torch --index-url https://download.pytorch.org/whl/cpu \
    --extra-index-url https://pypi.org/simple
fi

extras=${MIXOPT_EXTRAS:-dev}
say "installing mixopt (editable) with extras: $extras"
pip_quiet -e ".[$extras]"
.venv/bin/python -c 'import mixopt, proxies' || { echo "mixopt failed to install" >&2; exit 1; }

if [ "$demo_corpus" = 1 ]; then
  mapfile -t packages < <(.venv/bin/python experiments/demo/build_corpus.py --debian-packages)
  sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo -n)
  if ! command -v apt-get >/dev/null 2>&1; then
    say "no apt-get: the demo corpus uses stand-in text where the Debian packages are missing"
  elif [ ${#sudo[@]} -gt 0 ] && ! sudo -n true 2>/dev/null; then
    say "not root (and no passwordless sudo): the demo corpus uses stand-in text where the Debian packages are missing"
  else
    missing=()
    for p in "${packages[@]}"; do
      dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
      say "installing Debian text packages: ${missing[*]}"
      { "${sudo[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
          "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/dev/null \
        || say "could not install ${missing[*]}; the corpus uses stand-in text for them"
    fi
  fi
  say "building the demo corpus"
  .venv/bin/python experiments/demo/build_corpus.py
fi
say "done"
