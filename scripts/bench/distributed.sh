#!/usr/bin/env bash
# Data-parallel training on this machine: patches/s of one process with 2 threads against two
# processes with 1 thread each (scripts/train_distributed.sh: Gloo over the loopback device),
# the same network, data and patches per step (two processes take half the batch each), with one
# process on 1 thread as the base of the scaling efficiency, and the share of the step time that
# the two processes spend in communication (the gradient all-reduce and the stop vote, from rank
# 0's log). Prints a markdown table and the CPU it ran on.
#
#   scripts/bench/distributed.sh [OUTPUT.md]
#
# Environment: DATA (default ../shared/data/train/gray400), BOTTLENECK (default build/bottleneck),
# ARCH (unet-s), PATCH (64), BATCH (patches per step, 16), ITERS (40), SKIP (first steps left out
# of the rate, 5), WORK (keep the runs there).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
data="${DATA:-$root/../shared/data/train/gray400}"
cli="${BOTTLENECK:-$root/build/bottleneck}"
arch="${ARCH:-unet-s}"
patch="${PATCH:-64}"
batch="${BATCH:-16}"
iters="${ITERS:-40}"
skip="${SKIP:-5}"
out="${1:-}"
if [ -n "${WORK:-}" ]; then work="$WORK"; mkdir -p "$work"; else work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT; fi

common=(--data "$data" --arch "$arch" --patch "$patch" --iters "$iters" --log-every 1 --val-every 1000000
        --checkpoint-every 1000000 --layout nchw --noise gaussian:25 --seed 1 --lr 1e-3 --no-augment)

# Patches per second over steps SKIP+1 .. ITERS (metrics.csv's elapsed_s), the start-up and the
# first steps (allocator warm-up, oneDNN's kernel choice) left out.
rate() {
  awk -F, -v skip="$skip" -v b="$batch" 'NR == 1 {for (i = 1; i <= NF; i++) if ($i == "elapsed_s") c = i; next}
    $1 == skip {t0 = $c} {t1 = $c; last = $1}
    END {printf "%.1f", (last - skip) * b / (t1 - t0)}' "$1/metrics.csv"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
rm -rf "$work/p1t1" "$work/p1t2" "$work/p2t1"
"$cli" --threads 1 train "${common[@]}" --batch "$batch" --out "$work/p1t1" -q
"$cli" --threads 2 train "${common[@]}" --batch "$batch" --out "$work/p1t2" -q
MASTER_PORT="${MASTER_PORT:-29517}" BOTTLENECK="$cli" "$root/scripts/train_distributed.sh" 2 \
  "${common[@]}" --batch $((batch / 2)) --threads 1 --out "$work/p2t1" > "$work/p2t1.log" 2>&1 ||
  { cat "$work/p2t1.log" >&2; exit 1; }
comm=$(grep -o 'communication: [0-9.]* ms per step, [0-9.]*%' "$work/p2t1.log" | head -1)
comm_ms=$(echo "$comm" | awk '{print $2}')
comm_share=$(echo "$comm" | awk '{print $6}')

r11=$(rate "$work/p1t1")
r12=$(rate "$work/p1t2")
r21=$(rate "$work/p2t1")
eff() { awk -v r="$1" -v base="$r11" 'BEGIN {printf "%.0f%%", 100 * r / (2 * base)}'; }
{
  echo "| processes x threads | patches/s | scaling efficiency (vs 1 x 1) | communication |"
  echo "| --- | --: | --: | --: |"
  echo "| 1 x 1 | $r11 | (base) | - |"
  echo "| 1 x 2 | $r12 | $(eff "$r12") | - |"
  echo "| 2 x 1 | $r21 | $(eff "$r21") | $comm_ms ms per step, $comm_share of the loop's time |"
  echo
  echo "$arch, $batch patches of ${patch}² per step (2 x $((batch / 2)) for two processes), steps $((skip + 1))-$iters of $iters, on"
  echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') ($(nproc) hardware threads; load average $load_before before the runs), $(date +%F)."
  echo "Made by \`scripts/bench/distributed.sh\`."
} > "$work/table.md"
if [ -n "$out" ]; then cp "$work/table.md" "$out"; fi
cat "$work/table.md"
