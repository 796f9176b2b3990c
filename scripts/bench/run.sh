#!/usr/bin/env bash
# The performance benchmark (issue 7): builds if needed, then runs every measurement against its
# peer and prints a markdown table (also written to out/bench/bench.md).
#   scripts/bench/run.sh [DATA_DIR] [--threads N] [--seconds S] [--quick] [--out DIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bash "$root/scripts/build.sh" >/dev/null
exec /usr/bin/python3 "$root/scripts/bench/bench.py" "$@"
