#!/usr/bin/env bash
# The benchmark suite on a discrete GPU, in at most about 5 minutes: builds the release
# binary, prints the adapter, and runs `fmpe bench --suite` for every kernel variant the
# adapter can run (the portable and specialised tiled kernels; the subgroup CPU kernel
# only where the adapter has 8-lane subgroups). Writes bench-gpu.json beside the table.
#   scripts/bench-gpu.sh [extra fmpe bench flags]
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/fmpe-xdg-$$}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
cargo build --release --quiet
./target/release/fmpe devices
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
time ./target/release/fmpe bench --suite --kernels all --seconds 1 --out bench-gpu.json "$@"
