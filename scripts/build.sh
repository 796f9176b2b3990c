#!/usr/bin/env bash
# Configures and builds into build/ (Release). Extra arguments go to cmake's configure step.
# BOTTLENECK_TARGETS (space-separated) builds only those targets, e.g. "bottleneck" for the CLI
# and the shipped models without the tests (what the demo needs).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BOTTLENECK_BUILD_DIR:-$root/build}"
if [ ! -f "$build/CMakeCache.txt" ] || [ $# -gt 0 ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
fi
targets=()
for t in ${BOTTLENECK_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$build" -j "$(nproc)" "${targets[@]}"
