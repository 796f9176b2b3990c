#!/usr/bin/env bash
# Installs every Debian package Bottleneck needs to build, test and run. A no-op (one dpkg query)
# when all are present. Needs root or sudo for the install step.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libtorch-dev            # LibTorch 1.13 (CPU)
  libgloo-dev             # Gloo's headers, which LibTorch's c10d headers include: distributed training
  libopenblas0-pthread    # without it LibTorch's matmuls use the reference BLAS, ~30x slower
  libopencv-dev           # image I/O, drawing, NLM baseline
  libexiv2-dev            # EXIF, ICC and XMP carried from input photos into outputs (OpenCV writes none)
  libcxxopts-dev          # CLI parsing
  nlohmann-json3-dev      # ArchSpec / config / metadata JSON
  zlib1g-dev              # gzip IDX files
  libgtest-dev            # unit tests
  python3-torch python3-opencv python3-skimage  # /usr/bin/python3 as a second client in tests
  python3-pil             # tests: a second EXIF/ICC writer and reader (photo_metadata_test)
  python3-matplotlib      # scripts/bench/codec_rd.py's RD plot
  webp libopenjp2-tools libavif-bin libjxl-tools  # codec_rd.py's peers: cwebp, opj_compress, avifenc, cjxl
  dataset-fashion-mnist   # Fashion-MNIST IDX files
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
