#!/usr/bin/env bash
# Data-parallel training on this machine without torchrun: starts N ranks of
#   bottleneck train ARGS...
# with the environment torchrun would give them (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR,
# MASTER_PORT), prefixes each rank's output with "[rank R] ", and, as torchrun does, stops the
# others once one fails. Exits with the first failing rank's status (0 when all finish).
#
#   scripts/train_distributed.sh N [train options...]
#   BOTTLENECK=path/to/bottleneck MASTER_PORT=29500 scripts/train_distributed.sh 2 --data d --out run
#
# Each rank gets --threads from the options (give every rank cores of its own: N x threads at
# most the machine's cores). For several machines, use torchrun (README, "Distributed training").
set -euo pipefail

if [ $# -lt 1 ] || ! [[ "$1" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 N [bottleneck train options...]  (N = processes, >= 1)" >&2
  exit 2
fi
n=$1
shift
here="$(cd "$(dirname "$0")" && pwd)"
bin="${BOTTLENECK:-}"
if [ -z "$bin" ]; then
  if [ -x "$here/../build/bottleneck" ]; then bin="$here/../build/bottleneck"; else bin="bottleneck"; fi
fi
port="${MASTER_PORT:-29500}"

pids=()
stop_all() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
}
trap 'stop_all' INT TERM

for ((r = 0; r < n; r++)); do
  # Process substitution keeps $! the rank's own PID (a pipe would give sed's).
  WORLD_SIZE=$n RANK=$r LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
    "$bin" train "$@" > >(sed -u "s/^/[rank $r] /") 2> >(sed -u "s/^/[rank $r] /" >&2) &
  pids+=($!)
done

status=0
left=("${pids[@]}")
while [ ${#left[@]} -gt 0 ]; do
  rc=0
  done_pid=""
  wait -n -p done_pid "${left[@]}" || rc=$?
  rest=()
  for p in "${left[@]}"; do [ "$p" = "$done_pid" ] || rest+=("$p"); done
  left=("${rest[@]+"${rest[@]}"}")
  if [ "$rc" -ne 0 ] && [ "$status" -eq 0 ]; then
    status=$rc
    # The others would fail on their own within --dist-timeout; do not make them wait.
    stop_all
  fi
done
wait  # the output filters
exit "$status"
