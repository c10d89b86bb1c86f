#!/usr/bin/env bash
# Two fmpe binaries side by side, run alternately (the machine is shared and noisy), with
# the 1-minute load average printed before each run:
#   scripts/compare-binaries.sh OLD_BIN NEW_BIN [PAIRS] [NETWORK FLAGS...]
# e.g. scripts/compare-binaries.sh /tmp/old/target/release/fmpe target/release/fmpe 3 --hidden 64 --blocks 4
# Prints the training and rk4(20) lines of `fmpe bench` at batch 256 and 1024.
set -u
old="$1"; new="$2"; pairs="${3:-3}"; shift 3 || shift $#
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/fmpe-xdg-$$}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
for batch in 256 1024; do
  for pair in $(seq 1 "$pairs"); do
    for which in old new; do
      bin="$old"; steps=10
      if [ "$which" = new ]; then bin="$new"; steps=60; fi
      load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?")
      out=$("$bin" bench "$@" --batch-size "$batch" --train-steps "$steps" --num-samples 256 --rk4-steps 20 \
        --log-prob-points 0 --num-simulations 5000 2>/dev/null | grep -E "^training|Rk4" | tr '\n' ' ')
      echo "batch=$batch pair=$pair $which load=$load :: $out"
    done
  done
done
