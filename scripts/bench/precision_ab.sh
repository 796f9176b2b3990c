#!/usr/bin/env bash
# Does bf16 compute cost training quality? Trains the same small blind denoiser twice, fp32 and
# bf16, side by side (one thread each, so both see the same machine), and writes their
# validation PSNR on Set12 (first 4 images, sigma 25) and wall time to a markdown table.
#
#   scripts/bench/precision_ab.sh [OUTPUT.md]   (default models/training/precision-ab.md)
#
# Environment: DATA (default ../shared/data), BOTTLENECK (default build/bottleneck), ITERS (1000),
# WORK (keep the two runs there; runs already finished in it are not trained again).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
data="${DATA:-$root/../shared/data}"
cli="${BOTTLENECK:-$root/build/bottleneck}"
iters="${ITERS:-1000}"
out="${1:-$root/models/training/precision-ab.md}"
if [ -n "${WORK:-}" ]; then work="$WORK"; mkdir -p "$work"; else work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT; fi

for p in fp32 bf16; do
  if [ -f "$work/$p/metrics.csv" ] && [ "$(tail -1 "$work/$p/metrics.csv" | cut -d, -f1)" = "$iters" ]; then continue; fi
  "$cli" train --data "$data/train/gray400" --val "$data/val/set12" --val-max-images 4 \
    --noise gaussian:0-55 --val-noise gaussian:25 --arch unet-s --patch 64 --batch 16 --iters "$iters" \
    --lr 2e-3 --val-every $((iters / 4)) --checkpoint-every $((iters / 4)) --samples 0 --precision "$p" \
    --out "$work/$p" --threads 1 -q &
done
wait

{
  echo "| iteration | fp32 PSNR (dB) | bf16 PSNR (dB) |"
  echo "| --: | --: | --: |"
  join -t, <(awk -F, 'NR > 1 && $6 != "" {print $1 "," $6}' "$work/fp32/metrics.csv") \
           <(awk -F, 'NR > 1 && $6 != "" {print $1 "," $6}' "$work/bf16/metrics.csv") |
    awk -F, '{printf "| %d | %.2f | %.2f |\n", $1, $2, $3}'
  t32=$(tail -1 "$work/fp32/metrics.csv" | awk -F, '{print $NF}')
  t16=$(tail -1 "$work/bf16/metrics.csv" | awk -F, '{print $NF}')
  echo
  echo "unet-s, blind gaussian:0-55, batch 16 x 64², $iters iterations, one thread each, run side by side on"
  echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') ($(date +%F)): fp32 took $(printf %.0f "$t32") s,"
  echo "bf16 $(printf %.0f "$t16") s ($(awk -v a="$t32" -v b="$t16" 'BEGIN {printf "%.2f", a / b}')x). Made by \`scripts/bench/precision_ab.sh\`."
} > "$out.tmp"
mv "$out.tmp" "$out"
cat "$out"
