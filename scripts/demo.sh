#!/usr/bin/env bash
# The README's main command: installs what is missing, builds, then denoises a few real photos
# (the sample images of Debian's python3-skimage) with synthetic noise added, writing the
# denoised images and clean | noisy | denoised comparisons to out/demo/denoised/.
# Idempotent: a second run reuses the build, the model and the outputs.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup.sh"
"$root/scripts/build.sh" >/dev/null
cli="$root/build/bottleneck"
samples=/usr/lib/python3/dist-packages/skimage/data
out="$root/out/demo"

mkdir -p "$out/photos"
for f in astronaut.png chelsea.png coffee.png camera.png; do
  [ -f "$out/photos/$f" ] || cp "$samples/$f" "$out/photos/$f"
done

model="$root/models/denoise-color.pt"
if [ ! -f "$model" ]; then
  # No shipped model in this checkout: train a small blind colour denoiser (a few minutes on two
  # cores) on other sample photos, never on the ones it will be shown on.
  model="$out/quick-model/last.ckpt"
  if [ ! -f "$model" ]; then
    mkdir -p "$out/train"
    for f in motorcycle_left.png motorcycle_right.png hubble_deep_field.jpg ihc.png rocket.jpg \
             brick.png grass.png gravel.png coins.png moon.png; do
      [ -f "$out/train/$f" ] || cp "$samples/$f" "$out/train/$f"
    done
    echo "demo: no shipped model found; training a small one first (about a minute)" >&2
    "$cli" train --data "$out/train" --out "$out/quick-model" --arch unet-s --channels 3 \
      --noise gaussian:0-55 --iters 400 --patch 64 --batch 8 --lr 2e-3 --log-every 50
  fi
fi

"$cli" denoise --model "$model" --input "$out/photos" --output "$out/denoised" \
  --add-noise gaussian:25 --compare --skip-existing
echo "demo: results in $out/denoised (the *.compare.png files show clean | noisy | denoised)"
