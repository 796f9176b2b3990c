#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, and runs the whole suite (CTest).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup.sh"
"$root/scripts/build.sh"
cd "${BOTTLENECK_BUILD_DIR:-$root/build}"
ctest --output-on-failure -j "$(nproc)" "$@"
