#!/usr/bin/python3
"""The Python peer of `bottleneck denoise`: what a user would write with Debian's PyTorch and
OpenCV. Loads the same exported TorchScript file with torch.jit.load and denoises every image of
a folder (decode -> forward in inference mode -> encode), whole images, one at a time.

    /usr/bin/python3 scripts/bench/peer_denoise.py MODEL INPUT_DIR OUTPUT_DIR [--threads N]

Prints one line: images, megapixels, seconds (model loading excluded), MP/s.
"""
import argparse
import os
import time

import cv2
import torch


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = torch.jit.load(args.model).eval()
    names = sorted(n for n in os.listdir(args.input)
                   if n.lower().endswith((".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")))
    os.makedirs(args.output, exist_ok=True)
    # The model's channel count, from its first convolution.
    in_channels = next(p for n, p in model.named_parameters() if n.endswith("weight")).shape[1]
    megapixels = 0.0
    start = time.perf_counter()
    with torch.inference_mode():
        for name in names:
            img = cv2.imread(os.path.join(args.input, name), cv2.IMREAD_COLOR if in_channels == 3 else cv2.IMREAD_GRAYSCALE)
            if in_channels == 3:
                x = torch.from_numpy(cv2.cvtColor(img, cv2.COLOR_BGR2RGB)).permute(2, 0, 1)[None].float() / 255
            else:
                x = torch.from_numpy(img)[None, None].float() / 255
            y = model(x).clamp(0, 1)
            out = (y[0] * 255).round().byte()
            out = out.permute(1, 2, 0).numpy() if in_channels == 3 else out[0].numpy()
            if in_channels == 3:
                out = cv2.cvtColor(out, cv2.COLOR_RGB2BGR)
            cv2.imwrite(os.path.join(args.output, name), out)
            megapixels += img.shape[0] * img.shape[1] / 1e6
    seconds = time.perf_counter() - start
    print(f"images {len(names)} megapixels {megapixels:.3f} seconds {seconds:.3f} mp_per_s {megapixels / seconds:.4f}")


if __name__ == "__main__":
    main()
