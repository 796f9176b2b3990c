#!/usr/bin/python3
"""Dimensionality reduction benchmark (issue 18): Fashion-MNIST test reconstruction MSE (pixels in
[0, 1]) of our autoencoder against PCA at the same latent size k, both fit on the 60 000 training
images, measured in the same run; and a 2-D scatter plot of the test set's latents coloured by class.

    /usr/bin/python3 scripts/bench/dimred.py [--cli build/bottleneck] [--ks 8,16,32,64]
        [--iters 20000] [--code map|dense] [--threads 1] [--work /tmp/bn-dimred-bench] [--figures docs/images]

Ours: `train --task reconstruct --data fashion-mnist:...` with a conv-ae whose code is 2 x 2 x k/4
(28 x 28 padded to 32, four 2x downsamplings; --code map) or k dense numbers (--code dense: linear
layers from and to the 2 x 2 x 64 map), then `score --score mse` of the 10 000 test images
(the mean of per-image MSE is the test MSE: all images are 28 x 28) with the run's last
checkpoint (no selection on the test set). PCA: the top k eigenvectors of the training images'
covariance. The scatter: `encode` of the test set with the k = 8 model, projected to the two
principal axes of those latents (FIGURES/dimred-scatter.png), beside PCA's own first two components.
"""
import argparse
import csv
import datetime
import io
import json
import os
import shlex
import shutil
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import anomaly_common as ac  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
WIDTHS = "16,32,64,64,64"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cli", default=os.path.join(ROOT, "build", "bottleneck"))
    p.add_argument("--ks", default="8,16,32,64")
    p.add_argument("--iters", type=int, default=20000,
                   help="steps per k (20000: about 21 epochs, 22 minutes on one thread; 1500 and 6000 measured worse, README)")
    p.add_argument("--head", default="sigmoid", choices=["sigmoid", "linear"])
    p.add_argument("--code", default="map", choices=["map", "dense"])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", default="/tmp/bn-dimred-bench")
    p.add_argument("--figures", default="")
    a = p.parse_args()
    ks = [int(k) for k in a.ks.split(",")]
    os.makedirs(a.work, exist_ok=True)
    log = sys.stderr
    train_x, _ = ac.fashion("train")
    test_x, test_y = ac.fashion("test")
    pngs = os.path.join(a.work, "fm-test")
    ac.write_fashion_pngs(test_x, test_y, pngs)
    tr = train_x.reshape(len(train_x), -1).astype(np.float64) / 255
    te = test_x.reshape(len(test_x), -1).astype(np.float64) / 255
    mean, comps = ac.pca_fit(tr, max(ks))
    rows = []
    for k in ks:
        if k % 4 and a.code == "map":
            raise SystemExit("--ks: each k must be a multiple of 4 (a 2 x 2 x k/4 code; --code dense takes any k)")
        code = ["--latent", str(k)] if a.code == "dense" else ["--bottleneck", str(k // 4)]
        t0 = time.time()
        run_dir = os.path.join(a.work, f"run-{k}")
        model = os.path.join(a.work, f"dimred-{k}.pt")
        if not os.path.exists(model):
            shutil.rmtree(run_dir, ignore_errors=True)
            ac.run(a.cli, ["train", "--task", "reconstruct", "--data", f"fashion-mnist:{ac.FASHION}", "--arch", "conv-ae",
                           "--widths", WIDTHS] + code + ["--activation", "leaky_relu", "--head", a.head, "--patch", "28",
                           "--batch", str(a.batch), "--no-augment", "--iters", str(a.iters), "--lr", "2e-3",
                           "--val-every", str(a.iters), "--val-max-images", "500", "--checkpoint-every", str(a.iters),
                           "--out", run_dir], a.threads, log)
            ac.run(a.cli, ["export", "--checkpoint", os.path.join(run_dir, "last.ckpt"), "--output", model], a.threads, log)
        train_s = time.time() - t0
        out = ac.run(a.cli, ["score", "--model", model, "--score", "mse", pngs], a.threads, log)
        ours = float(np.mean([float(r["score"]) for r in csv.DictReader(io.StringIO(out))]))
        pca = float((((ac.pca_reconstruct(te, mean, comps[:k]) - te) ** 2).mean()))
        rows.append({"k": k, "ours": ours, "pca": pca, "train_seconds": train_s})
        print(f"k={k}: ours {ours:.5f}, PCA {pca:.5f} ({train_s:.0f} s training)", file=log, flush=True)
    if a.figures and 8 in ks:
        scatter(a, os.path.join(a.work, "dimred-8.pt"), pngs, te, test_y, mean, comps, log)
    when = datetime.date.today().isoformat()
    cmd = " ".join(shlex.quote(x) for x in sys.argv)
    print(f"Measured {when} on {ac.cpu_name()}, {a.threads} thread(s): `{cmd}`\n")
    print(f"Fashion-MNIST test reconstruction MSE (pixels in [0, 1]; ours: conv-ae {WIDTHS}, {'code 2 x 2 x k/4' if a.code == 'map' else 'a dense code of k'}, "
          f"{a.head} head, {a.iters} steps of {a.batch} images)\n")
    print("| k | ours | PCA | ours / PCA | our training (s) |\n|--:|--:|--:|--:|--:|")
    for r in rows:
        print(f"| {r['k']} | {r['ours']:.5f} | {r['pca']:.5f} | {r['ours'] / r['pca']:.3f} | {r['train_seconds']:.0f} |")
    json.dump({"command": cmd, "cpu": ac.cpu_name(), "date": when, "rows": rows},
              open(os.path.join(a.work, "dimred-results.json"), "w"), indent=2)


def scatter(a, model, pngs, te, test_y, mean, comps, log):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    npy = os.path.join(a.work, "latents-8.npy")
    ac.run(a.cli, ["encode", "--model", model, pngs, "-o", npy], a.threads, log)
    z = np.load(npy).astype(np.float64)
    names = open(npy + ".files.txt").read().splitlines()
    labels = np.array([int(os.path.basename(os.path.dirname(n))) for n in names])
    zc = z - z.mean(0)
    _, _, vt = np.linalg.svd(zc, full_matrices=False)
    ours2 = zc @ vt[:2].T
    pca2 = (te - mean) @ comps[:2].T
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
    for ax, pts, lab, title in ((axes[0], ours2, labels, "ours: 8 latents (encode), first 2 principal axes"),
                                (axes[1], pca2, test_y, "PCA of the pixels: first 2 components")):
        for c in range(10):
            m = lab == c
            ax.scatter(pts[m, 0], pts[m, 1], s=2, alpha=0.5, label=ac.CLASSES[c], color=plt.cm.tab10(c))
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[1].legend(markerscale=6, fontsize=8, loc="best")
    fig.suptitle("Fashion-MNIST test set (10 000 images) in 2-D, coloured by class")
    fig.tight_layout()
    out = os.path.join(a.figures, "dimred-scatter.png")
    fig.savefig(out, dpi=80)
    print(f"wrote {out}", file=log, flush=True)


if __name__ == "__main__":
    main()
