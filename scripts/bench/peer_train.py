#!/usr/bin/python3
"""The Python peer of `bottleneck train`: a plain PyTorch training loop (Debian's PyTorch) over
the same network, loaded with torch.jit.load from a file `bottleneck export` wrote, with the same
batch, patch size, loss (MSE) and optimiser (Adam, lr 1e-3) and the same noise (Gaussian, sigma
drawn per patch from [0, 55]).

    /usr/bin/python3 scripts/bench/peer_train.py MODEL DATA_DIR [--batch 8] [--patch 96]
        [--threads N] [--seconds 10] [--steps 100]

Prints one line: compute-only patches/s (one fixed batch, no data loading, after a warm-up) and
patches/s of a whole run of --steps steps from a fresh start with its loader (random crops, flips
and rotations, noise) in the training loop, as a script would: what `bottleneck train` reports.
"""
import argparse
import os
import time

import cv2
import numpy as np
import torch


def load_images(folder, channels):
    images = []
    for root, _, names in os.walk(folder):
        for name in sorted(names):
            img = cv2.imread(os.path.join(root, name), cv2.IMREAD_COLOR if channels == 3 else cv2.IMREAD_GRAYSCALE)
            if img is None:
                continue
            if channels == 3:
                img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).transpose(2, 0, 1)
            else:
                img = img[None]
            images.append(torch.from_numpy(np.ascontiguousarray(img)).float() / 255)
    return images


def make_batch(images, batch, patch, rng):
    clean = []
    for _ in range(batch):
        img = images[rng.integers(len(images))]
        y = rng.integers(img.shape[1] - patch + 1)
        x = rng.integers(img.shape[2] - patch + 1)
        p = img[:, y:y + patch, x:x + patch]
        p = torch.rot90(p, int(rng.integers(4)), dims=(1, 2))
        if rng.integers(2):
            p = torch.flip(p, dims=(2,))
        clean.append(p)
    clean = torch.stack(clean)
    sigma = torch.from_numpy(rng.uniform(0, 55 / 255, size=(batch, 1, 1, 1))).float()
    return clean, clean + sigma * torch.randn_like(clean)


def timed_steps(model, optimizer, next_batch, seconds=0, steps=0):
    """Patches/s: after 3 warm-up steps for `seconds`, or over exactly `steps` steps from the
    first (as `bottleneck train` counts a whole run)."""
    def step():
        clean, noisy = next_batch()
        loss = torch.nn.functional.mse_loss(model(noisy), clean)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return clean.shape[0]

    if not steps:
        for _ in range(3):
            step()
    patches, done, start = 0, 0, time.perf_counter()
    while (done < steps) if steps else (time.perf_counter() - start < seconds or done < 3):
        patches += step()
        done += 1
    return patches / (time.perf_counter() - start)


def fresh(path):
    model = torch.jit.load(path)
    model.train()
    for p in model.parameters():  # exports are written for inference, without gradients
        p.requires_grad_(True)
    return model, torch.optim.Adam(model.parameters(), lr=1e-3)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("data")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=96)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--seconds", type=float, default=10, help="compute-only measurement time")
    parser.add_argument("--steps", type=int, default=100, help="steps of the run with the loader")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, optimizer = fresh(args.model)
    channels = next(p for n, p in model.named_parameters() if n.endswith("weight")).shape[1]
    fixed_clean = torch.rand(args.batch, channels, args.patch, args.patch)
    fixed_noisy = fixed_clean + 0.1 * torch.randn_like(fixed_clean)
    compute = timed_steps(model, optimizer, lambda: (fixed_clean, fixed_noisy), seconds=args.seconds)

    images = [im for im in load_images(args.data, channels) if min(im.shape[1:]) >= args.patch]
    rng = np.random.default_rng(0)
    model, optimizer = fresh(args.model)  # a cold start, like `bottleneck train`
    with_loader = timed_steps(model, optimizer, lambda: make_batch(images, args.batch, args.patch, rng), steps=args.steps)
    print(f"compute_patches_per_s {compute:.3f} loader_patches_per_s {with_loader:.3f}")


if __name__ == "__main__":
    main()
