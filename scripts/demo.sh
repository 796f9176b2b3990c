#!/usr/bin/env bash
# The README's main command: installs what is missing, builds, then denoises a few real photos
# (the sample images of Debian's python3-skimage) with synthetic noise added, writing the
# denoised images and clean | noisy | denoised comparisons to out/demo/denoised/; then compresses
# them with the learned codec (out/demo/compressed/, with --compare strips) and decodes them back.
# Idempotent: a second run reuses the build and the outputs.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup.sh"
# The CLI and the shipped models only: the tests are scripts/test.sh's business.
BOTTLENECK_TARGETS=bottleneck "$root/scripts/build.sh" >/dev/null
cli="$root/build/bottleneck"
samples=/usr/lib/python3/dist-packages/skimage/data
out="$root/out/demo"

mkdir -p "$out/photos"
for f in astronaut.png chelsea.png coffee.png camera.png; do
  [ -f "$out/photos/$f" ] || cp "$samples/$f" "$out/photos/$f"
done

# Outputs made by other models (an older checkout's) are redone; otherwise --skip-existing makes
# a second run instant.
stamp="$out/denoised/.models"
models="$(cksum "$root"/models/denoise-*.pt)"
if [ -d "$out/denoised" ] && [ "$(cat "$stamp" 2>/dev/null)" != "$models" ]; then rm -rf "$out/denoised"; fi

# The Gaussian family for Gaussian noise: each photo goes through the shipped Gaussian denoiser for
# its channels (camera.png is gray). Real camera noise is the photo model's job, the default.
"$cli" denoise --input "$out/photos" --output "$out/denoised" --model gaussian --add-noise gaussian:25 --compare --skip-existing
printf '%s\n' "$models" > "$stamp"
echo "demo: results in $out/denoised (the *.compare.png files show clean | noisy | denoised)"

# The learned codec: the photos as .bnc files and back, with original | ours | JPEG | WebP strips
# at equal file size. The shipped codec is a snapshot of a run still training: about JPEG's
# quality per bit, well behind WebP, as the strips show.
codec_stamp="$out/compressed/.model"
codec_model="$(cksum "$root/models/codec.bnm")"
if [ -d "$out/compressed" ] && [ "$(cat "$codec_stamp" 2>/dev/null)" != "$codec_model" ]; then
  rm -rf "$out/compressed" "$out/decompressed"
fi
"$cli" compress "$out/photos" -o "$out/compressed" --quality 75 --compare --skip-existing
"$cli" decompress "$out/compressed" -o "$out/decompressed" --skip-existing
printf '%s\n' "$codec_model" > "$codec_stamp"
echo "demo: compressed photos in $out/compressed (*.compare.png: original | ours | JPEG | WebP at the same size), decoded in $out/decompressed"
