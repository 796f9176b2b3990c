#!/usr/bin/env bash
# Which U-Net gives the most quality per FLOP? Trains each candidate the same way (blind
# gaussian:0-55 on train/gray400, same seed, same patches, ITERS steps of a full cosine schedule),
# then measures it on Set12 at sigma 15 / 25 / 50 and writes a markdown table: MACs per pixel,
# parameters, training patches per second and PSNR. The shipped architecture (unet-l) is one row.
#
#   scripts/arch_sweep.sh [OUTPUT.md]   (default models/training/arch-sweep.md)
#
# Environment: DATA (default ../shared/data), BOTTLENECK (default build/bottleneck), ITERS (2000),
# THREADS (1), WORK (default ~/.cache/bottleneck/sweep: candidates already trained there are not
# trained again, so a stopped sweep continues where it was).
# Short runs favour small networks (they converge sooner), so read the table as a lower bound
# for the large ones; the candidates all see the same data, so the ranking at equal cost holds.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
data="${DATA:-$root/../shared/data}"
cli="${BOTTLENECK:-$root/build/bottleneck}"
iters="${ITERS:-2000}"
threads="${THREADS:-1}"
work="${WORK:-$HOME/.cache/bottleneck/sweep}"
out="${1:-$root/models/training/arch-sweep.md}"
mkdir -p "$work"

# name | architecture flags. From small to large; 'l' is what the shipped models use.
candidates=(
  "s|--arch unet-s"
  "m|--arch unet-m"
  "deep|--arch unet --widths 24,48,96,192,384"
  "l|--arch unet-l"
  "l-3conv|--arch unet-l --convs 3"
  "wide|--arch unet --widths 48,96,192,384"
)

rows=()
for c in "${candidates[@]}"; do
  name="${c%%|*}"; read -r -a arch <<< "${c#*|}"
  run="$work/$name"
  done_iters=0
  [ -f "$run/last.ckpt" ] && done_iters=$("$cli" info "$run/last.ckpt" | awk '/^iterations:/ {print $2}')
  if [ "$done_iters" != "$iters" ]; then
    if [ -f "$run/last.ckpt" ]; then
      "$cli" train --resume "$run" --threads "$threads" -q
    else
      rm -rf "$run"
      "$cli" train "${arch[@]}" --channels 1 --data "$data/train/gray400" --noise gaussian:0-55 \
        --patch 64 --batch 8 --iters "$iters" --lr 1e-3 --lr-min 1e-5 --schedule cosine \
        --checkpoint-every 250 --log-every 50 --samples 0 --out "$run" --threads "$threads" -q
    fi
  fi
  if [ ! -f "$run/eval.json" ]; then
    "$cli" eval --model "$run/last.ckpt" --clean "$data/val/set12" \
      --noise gaussian:15,gaussian:25,gaussian:50 --no-nlm --threads "$threads" --json "$run/eval.json.tmp" -q > /dev/null
    mv "$run/eval.json.tmp" "$run/eval.json"
  fi
  meta="$("$cli" info "$run/last.ckpt")"
  params=$(awk '/^parameters:/ {print $2}' <<< "$meta")
  macs=$(awk '/^MACs per pixel:/ {print $4}' <<< "$meta")
  rows+=("$name|$params|$macs|${c#*|}")
done

/usr/bin/python3 - "$work" "$out.tmp" "$iters" "$threads" "${rows[@]}" <<'EOF'
import csv, datetime, json, sys
from types import SimpleNamespace
work, out, iters, threads, rows = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5:]
table = []
for row in rows:
    name, params, macs, flags = row.split("|", 3)
    with open(f"{work}/{name}/eval.json") as f:
        levels = json.load(f)["levels"]
    with open(f"{work}/{name}/metrics.csv") as f:
        rates = [float(m["patches_per_s"]) for m in csv.DictReader(f) if m["patches_per_s"]]
    table.append(SimpleNamespace(
        name=name, flags=flags, params=int(params), mb=int(params) * 4 / 1e6, macs=int(macs),
        rate=sum(rates) / len(rates), speed=levels[1]["model"]["seconds_per_megapixel"],
        psnr=[level["model"]["psnr"] for level in levels]))
base = table[0]
lines = ["| candidate | flags | parameters | fp32 MB | k MACs/pixel | training patches/s | denoising s/MP "
         f"| Set12 σ=15 | σ=25 | σ=50 | σ=25 gain over {base.name} per 100 k more MACs |",
         "| :-- | :-- | --: | --: | --: | --: | --: | --: | --: | --: | --: |"]
for t in table:
    slope = "–" if t.macs == base.macs else f"{(t.psnr[1] - base.psnr[1]) / ((t.macs - base.macs) / 1e5):+.2f} dB"
    lines.append(f"| {t.name} | `{t.flags}` | {t.params:,} | {t.mb:.1f} | {t.macs / 1e3:.1f} | {t.rate:.1f} | "
                 f"{t.speed:.2f} | " + " | ".join(f"{p:.2f}" for p in t.psnr) + f" | {slope} |")
best = max((t for t in table if t.mb <= 10), key=lambda t: t.psnr[1])
cheapest = min((t for t in table if t.psnr[1] >= best.psnr[1] - 0.05), key=lambda t: t.macs)
lines += ["", f"Within the 10 MB limit, `{best.name}` is the best at σ=25 ({best.psnr[1]:.2f} dB). Within 0.05 dB of it, "
          f"the fewest MACs per pixel are `{cheapest.name}`'s ({cheapest.macs / 1e3:.1f} k, {cheapest.mb:.1f} MB)."]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
lines += ["", f"Each candidate: blind `gaussian:0-55` on `train/gray400`, batch 8 × 64² patches, {iters} iterations "
          f"of Adam 1e-3 with a cosine decay to 1e-5, seed 0, {threads} thread(s); Set12 measured on the last "
          f"checkpoint with `bottleneck eval` (noise seed 0). fp32 MB is the weights alone (a shipped model may be "
          f"at most 10 MB). Training patches per second (the mean over the run) and denoising seconds per "
          f"megapixel (Set12, sigma 25) were measured on {cpu} ({datetime.date.today().isoformat()}) with the "
          "machine shared as it was during the sweep, so compare them with each other only. Made by `scripts/arch_sweep.sh`."]
with open(out, "w") as f:
    f.write("\n".join(lines) + "\n")
EOF
mv "$out.tmp" "$out"
cat "$out"
