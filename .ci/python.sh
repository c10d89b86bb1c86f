#!/usr/bin/env bash
# The Python package's CI phase (called by .ci/run after the Rust tests, with the release
# CLI built): in a fresh virtual environment, builds the wheel (`maturin build --release`)
# and the sdist (`maturin sdist`), installs the wheel, runs `pytest -ra` (the round-trip
# tests find the CLI through FMPE_BIN) and fails on any skipped test; then installs the
# sdist in a second fresh virtual environment and imports it. Cargo reuses the release
# build's dependencies through CARGO_TARGET_DIR. Prints the time of each step.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export FMPE_BIN="$CARGO_TARGET_DIR/release/fmpe"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

step_start=$(date +%s)
step() { # step NAME: prints the seconds since the last step
  local now
  now=$(date +%s)
  echo "python: $1 ($((now - step_start)) s)"
  step_start=$now
}

# Debian's python3 needs python3-venv for `python3 -m venv`.
if ! python3 -m venv "$work/venv" >/dev/null 2>&1; then
  echo "installing python3-venv"
  apt-get install -y -qq python3-venv >/dev/null
  rm -rf "$work/venv"
  python3 -m venv "$work/venv"
fi
"$work/venv/bin/pip" install -q --upgrade pip
"$work/venv/bin/pip" install -q "maturin>=1.5,<2" numpy pytest
step "virtual environment with maturin, numpy, pytest"

"$work/venv/bin/maturin" build --release --out "$work/dist" 2>&1 | tail -n 1
step "maturin build --release"
"$work/venv/bin/maturin" sdist --out "$work/dist" 2>&1 | tail -n 1
step "maturin sdist"
"$work/venv/bin/pip" install -q "$work"/dist/fmpe-*.whl
step "wheel installed"

status=0
"$work/venv/bin/python" -m pytest -ra -p no:cacheprovider python/tests 2>&1 | tee "$work/pytest.log" || status=$?
step "pytest"
if grep -Eq "^=+ .*[0-9]+ (skipped|xfailed|deselected)" "$work/pytest.log"; then
  echo "python: pytest skipped tests; every test must run" >&2
  status=1
fi

python3 -m venv "$work/venv2"
"$work/venv2/bin/pip" install -q "$work"/dist/fmpe-*.tar.gz
"$work/venv2/bin/python" -c "import fmpe; print('sdist install:', fmpe.__version__, fmpe.tasks.get('two_moons'))"
step "sdist installed in a fresh virtual environment"
exit "$status"
