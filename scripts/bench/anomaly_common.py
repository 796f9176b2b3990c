"""Shared by scripts/bench/anomaly.py and dimred.py: the CLI runner, the CPU's name, Fashion-MNIST
read with numpy, and the metrics of src/anomaly/anomaly_metrics.h re-done in numpy for the
baselines (same definitions: AUROC with ties halved, PRO integrated to FPR 0.3)."""
import gzip
import os
import subprocess
import sys
import time

import numpy as np

FASHION = "/usr/share/datasets/fashion-mnist"
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def run(cli, args, threads, log=None):
    """Runs the CLI with --threads; returns its stdout. Raises with the output on failure."""
    cmd = [cli, "--threads", str(threads), "--quiet"] + args
    t = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if log:
        print(f"  [{time.time() - t:6.1f} s] {' '.join(cmd[3:])[:150]}", file=log, flush=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return p.stdout


def read_idx(path):
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    if magic == 0x803:
        n, h, w = (int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(3))
        return np.frombuffer(data, np.uint8, n * h * w, 16).reshape(n, h, w)
    if magic == 0x801:
        n = int.from_bytes(data[4:8], "big")
        return np.frombuffer(data, np.uint8, n, 8).astype(np.int64)
    raise ValueError(f"{path}: not an IDX file")


def fashion(split, root=FASHION):
    prefix = "train" if split == "train" else "t10k"
    find = lambda stem: next(os.path.join(root, stem + e) for e in ("", ".gz") if os.path.exists(os.path.join(root, stem + e)))
    return read_idx(find(f"{prefix}-images-idx3-ubyte")), read_idx(find(f"{prefix}-labels-idx1-ubyte"))


def write_fashion_pngs(images, labels, out):
    """Test images as OUT/<label>/<index>.png (once; reused when complete)."""
    import cv2
    done = os.path.join(out, ".complete")
    if os.path.exists(done):
        return
    for c in range(10):
        os.makedirs(os.path.join(out, str(c)), exist_ok=True)
    for i, (img, c) in enumerate(zip(images, labels)):
        cv2.imwrite(os.path.join(out, str(c), f"{i:05d}.png"), img)
    open(done, "w").close()


def auroc(pos, neg):
    pos = np.asarray(pos, np.float64).ravel()
    neg = np.asarray(neg, np.float64).ravel()
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    allv = np.concatenate([pos, neg])
    order = np.argsort(allv, kind="mergesort")
    sorted_v = allv[order]
    ranks = np.empty(len(allv))
    # mean rank of each run of ties
    _, start, counts = np.unique(sorted_v, return_index=True, return_counts=True)
    mean_rank = start + (counts + 1) / 2.0
    ranks[order] = np.repeat(mean_rank, counts)
    p, n = len(pos), len(neg)
    return float((ranks[:p].sum() - p * (p + 1) / 2) / (p * n))


def pro(normal, regions, max_fpr=0.3, steps=300):
    """As pro_score in src/anomaly/anomaly_metrics.cc."""
    normal = np.sort(np.asarray(normal, np.float64))
    regions = [np.sort(np.asarray(r, np.float64)) for r in regions if len(r)]
    if not regions or len(normal) == 0:
        return float("nan")
    n = len(normal)
    above = lambda s, t: (len(s) - np.searchsorted(s, t, side="right")) / len(s)
    area, prev_f, prev_p, first = 0.0, 0.0, 0.0, True
    for k in range(steps + 1):
        a = int(np.floor(max_fpr * k / steps * n))
        t = -np.inf if a >= n else normal[n - 1 - a]
        f = min(above(normal, t), max_fpr)
        p = float(np.mean([above(r, t) for r in regions]))
        if not first:
            area += 0.5 * (p + prev_p) * (f - prev_f)
        first = False
        prev_f, prev_p = f, p
    area += prev_p * (max_fpr - prev_f)
    return area / max_fpr


def pca_fit(x, k):
    """x: N x D float64. Returns (mean, components k x D)."""
    mean = x.mean(0)
    # The covariance's eigenvectors (D x D is small: 784 or 4096) instead of an N x D SVD.
    cov = np.cov((x - mean).T)
    w, v = np.linalg.eigh(cov)
    return mean, v[:, ::-1][:, :k].T.copy()


def pca_reconstruct(x, mean, comps):
    z = (x - mean) @ comps.T
    return z @ comps + mean


def latent_blend(train_codes, train_coarse, codes, coarse, ridge=1e-3):
    """The latent and coarse-latent scores as `calibrate` fits them (src/anomaly/latent_gaussian.h):
    the squared Mahalanobis distance of each code from the training codes' Gaussian (covariance
    shrunk by ridge x its mean variance), and its log plus the coarse score's log, each
    standardised by its mean and spread on the training images. Returns (distance, blend)."""
    mu = train_codes.mean(0)
    cov = np.cov(train_codes.T)
    cov = cov + ridge * np.trace(cov) / len(cov) * np.eye(len(cov))
    prec = np.linalg.inv(cov)
    dist = lambda z: np.maximum(np.einsum("ij,jk,ik->i", z - mu, prec, z - mu), 0)
    lt_c, lt_d = np.log(np.maximum(train_coarse, 1e-30)), np.log(np.maximum(dist(train_codes), 1e-30))
    d = dist(codes)
    blend = ((np.log(np.maximum(coarse, 1e-30)) - lt_c.mean()) / max(lt_c.std(), 1e-12) +
             (np.log(np.maximum(d, 1e-30)) - lt_d.mean()) / max(lt_d.std(), 1e-12))
    return d, blend
