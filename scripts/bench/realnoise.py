#!/usr/bin/python3
"""Real camera noise: how the shipped models and OpenCV's NLM do on real noisy / clean pairs, and
how the synthetic camera noise (`--noise camera`) measures against the real noise.

    /usr/bin/python3 scripts/bench/realnoise.py [--pairs ../shared/data/val/realnoise-cc15]
        [--threads 2] [--out out/realnoise] [--figures docs/images]

PAIRS holds noisy/NAME.png and clean/NAME.png. Writes OUT/realnoise.md (the tables, with the
commands that produced them) and, with --figures, three pictures:
  camera-noise-stats.png   noise level against intensity per channel, and spatial correlation,
                           of the real pairs and of the synthetic camera noise on the same clean images
  realnoise-crop.png       noisy | photo model | clean, a crop of one pair
  strength.png             the photo model at --strength 0.5, 1 and 1.5 on that crop
NLM is run twice: with h set per image from a noise estimate (what `eval --pairs` does), and as an
oracle with the one h of 2..10 that is best on the whole set (h tuned on the answers).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from models_report import cpu_name  # noqa: E402  (one CPU-name reader for both reports)


def run(cmd):
    print("+ " + " ".join(cmd), file=sys.stderr)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr}")
    return p.stdout


def evaluate(cli, pairs, threads, extra):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "eval.json")
        cmd = [cli, "eval", "--clean", os.path.join(pairs, "clean"), "--pairs", os.path.join(pairs, "noisy"),
               "--threads", str(threads), "--json", path, "-q", *extra]
        run(cmd)
        with open(path) as f:
            return cmd, json.load(f)["levels"][0]


def noise_stats(noisy_dir, clean_dir, names):
    """Per channel: noise standard deviation in 12 bins of clean intensity (0-255), and the mean
    lag-1 horizontal and vertical correlation of the noise; plus the cross-channel correlation."""
    edges = np.linspace(0, 256, 13)
    sums = np.zeros((3, 12)); sq = np.zeros((3, 12)); counts = np.zeros((3, 12))
    lag = []; cross = []
    for name in names:
        n = cv2.imread(os.path.join(noisy_dir, name))[:, :, ::-1].astype(np.float64)
        c = cv2.imread(os.path.join(clean_dir, name))[:, :, ::-1].astype(np.float64)
        r = n - c
        for k in range(3):
            idx = np.clip(np.digitize(c[:, :, k], edges) - 1, 0, 11)
            for b in range(12):
                m = idx == b
                sums[k, b] += r[:, :, k][m].sum(); sq[k, b] += (r[:, :, k][m] ** 2).sum(); counts[k, b] += m.sum()
        lag.append([np.mean([np.corrcoef(r[:, :-1, k].ravel(), r[:, 1:, k].ravel())[0, 1],
                             np.corrcoef(r[:-1, :, k].ravel(), r[1:, :, k].ravel())[0, 1]]) for k in range(3)])
        cc = np.corrcoef(r.reshape(-1, 3).T)
        cross.append(np.mean([cc[0, 1], cc[0, 2], cc[1, 2]]))
    ok = counts > 500
    mean = np.where(ok, sums / np.maximum(counts, 1), np.nan)
    sd = np.where(ok, np.sqrt(np.maximum(sq / np.maximum(counts, 1) - mean ** 2, 0)), np.nan)
    return {"centres": (edges[:-1] + edges[1:]) / 2, "sd": sd, "lag1": np.mean(lag, axis=0),
            "cross": float(np.mean(cross)), "rms": float(np.sqrt(sq.sum() / counts.sum()))}


def plot_stats(real, synth, path):
    """Noise sd against intensity, R/G/B, real solid and synthetic dashed, drawn with OpenCV."""
    w, h, m = 720, 430, 60
    img = np.full((h, w, 3), 255, np.uint8)
    ymax = max(np.nanmax(real["sd"]), np.nanmax(synth["sd"])) * 1.15
    X = lambda v: int(m + (w - 2 * m) * v / 255)
    Y = lambda v: int(h - m - (h - 2 * m) * v / ymax)
    cv2.rectangle(img, (m, m), (w - m, h - m), (0, 0, 0), 1)
    for t in range(0, 256, 64):
        cv2.putText(img, str(t), (X(t) - 10, h - m + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    for t in np.arange(0, ymax, 2):
        cv2.putText(img, f"{t:.0f}", (m - 30, Y(t) + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.line(img, (m, Y(t)), (m + 5, Y(t)), (0, 0, 0), 1)
    colours = [(40, 40, 220), (40, 160, 40), (220, 80, 40)]  # BGR for R, G, B
    for stats, dashed in ((real, False), (synth, True)):
        for k in range(3):
            pts = [(X(x), Y(y)) for x, y in zip(stats["centres"], stats["sd"][k]) if np.isfinite(y)]
            for a, b in zip(pts, pts[1:]):
                if dashed:
                    for t in np.linspace(0, 1, 6)[::2]:
                        p = (int(a[0] + (b[0] - a[0]) * t), int(a[1] + (b[1] - a[1]) * t))
                        q = (int(a[0] + (b[0] - a[0]) * (t + 0.2)), int(a[1] + (b[1] - a[1]) * (t + 0.2)))
                        cv2.line(img, p, q, colours[k], 2, cv2.LINE_AA)
                else:
                    cv2.line(img, a, b, colours[k], 2, cv2.LINE_AA)
    text = [("noise sd (0-255) against clean intensity, per channel R G B", 20),
            (f"solid: real (cc15), lag-1 corr R/G/B {real['lag1'][0]:.2f}/{real['lag1'][1]:.2f}/{real['lag1'][2]:.2f},"
             f" cross-channel {real['cross']:.2f}", 38),
            (f"dashed: synthetic camera noise, lag-1 {synth['lag1'][0]:.2f}/{synth['lag1'][1]:.2f}/{synth['lag1'][2]:.2f},"
             f" cross-channel {synth['cross']:.2f}", 54)]
    for s, y in text:
        cv2.putText(img, s, (m, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "clean intensity", (w // 2 - 50, h - 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(path, img)


def label(img, text):
    out = cv2.copyMakeBorder(img, 28, 0, 0, 0, cv2.BORDER_CONSTANT, value=(255, 255, 255))
    cv2.putText(out, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def psnr(a, b):
    return 10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", default=os.path.join(ROOT, "..", "shared", "data", "val", "realnoise-cc15"))
    ap.add_argument("--cli", default=os.path.join(ROOT, "build", "bottleneck"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(ROOT, "out", "realnoise"))
    ap.add_argument("--figures", default="", help="folder for the pictures (e.g. docs/images)")
    ap.add_argument("--crop", default="d800_iso6400_2.png", help="pair shown in the pictures")
    ap.add_argument("--table", default=os.path.join(ROOT, "models", "training", "realnoise.md"),
                    help="also write the tables here (models_report.py includes them); '' = no")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    clean_dir, noisy_dir = os.path.join(args.pairs, "clean"), os.path.join(args.pairs, "noisy")
    names = sorted(f for f in os.listdir(clean_dir) if f.endswith(".png"))

    rows = []
    for model in ("gaussian", "photo"):
        cmd, level = evaluate(args.cli, args.pairs, args.threads, ["--model", model])
        rows.append((model, cmd, level))
    # The oracle: NLM's h tuned on the set itself (the model is run too; its numbers are ignored).
    oracle = []
    for h in range(2, 11):
        _, level = evaluate(args.cli, args.pairs, args.threads, ["--model", "gaussian", "--nlm-h", str(h)])
        oracle.append((level["nlm"]["psnr"], h, level["nlm"]["ssim"]))
    best = max(oracle)

    # Synthetic camera noise on the same clean images, written as images by denoise --strength 0
    # (the output is then the noisy input itself).
    synth_dir = os.path.join(args.out, "synthetic")
    run([args.cli, "denoise", clean_dir, synth_dir, "--add-noise", "camera", "--strength", "0", "--model", "photo", "--overwrite",
         "--threads", str(args.threads), "-q"])
    real = noise_stats(noisy_dir, clean_dir, names)
    synth = noise_stats(synth_dir, clean_dir, names)

    noisy, gauss, photo = rows[0][2]["noisy"], rows[0][2]["model"], rows[1][2]["model"]
    est = rows[0][2]["nlm"]
    lines = [
        f"Real noisy / clean pairs: {os.path.relpath(args.pairs, ROOT)} ({len(names)} pairs), {cpu_name()}, {args.threads} threads.",
        "",
        "| method | PSNR (dB) | SSIM |",
        "| --- | --: | --: |",
        f"| noisy | {noisy['psnr']:.2f} | {noisy['ssim']:.4f} |",
        f"| OpenCV NLM, h from a noise estimate per image | {est['psnr']:.2f} | {est['ssim']:.4f} |",
        f"| OpenCV NLM, oracle h = {best[1]} (best of 2..10 on this set) | {best[0]:.2f} | {best[2]:.4f} |",
        f"| shipped Gaussian colour model (`--model gaussian`) | {gauss['psnr']:.2f} | {gauss['ssim']:.4f} |",
        f"| **shipped photo model** (`--model photo`, the default) | **{photo['psnr']:.2f}** | **{photo['ssim']:.4f}** |",
        "",
        f"Speed (s/MP, model only): Gaussian {gauss['seconds_per_megapixel']:.3f}, photo {photo['seconds_per_megapixel']:.3f}.",
        "",
        "NLM oracle sweep (h: PSNR): " + ", ".join(f"{h}: {p:.2f}" for p, h, _ in sorted(oracle, key=lambda t: t[1])),
        "",
        f"Noise RMS (0-255): real {real['rms']:.2f}, synthetic camera noise on the same clean images {synth['rms']:.2f}; "
        f"lag-1 correlation R/G/B real {'/'.join(f'{v:.2f}' for v in real['lag1'])}, "
        f"synthetic {'/'.join(f'{v:.2f}' for v in synth['lag1'])}; cross-channel real {real['cross']:.2f}, "
        f"synthetic {synth['cross']:.2f}.",
        "",
        "Commands: " + "; ".join("`" + " ".join(c[1]) + "`" for c in rows),
    ]
    report = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "realnoise.md"), "w") as f:
        f.write(report)
    if args.table:
        with open(args.table, "w") as f:
            f.write(report.replace(ROOT + "/build/", "").replace(ROOT + "/../", "../"))
    print(report)

    if args.figures:
        os.makedirs(args.figures, exist_ok=True)
        plot_stats(real, synth, os.path.join(args.figures, "camera-noise-stats.png"))
        # One crop: noisy | photo model | clean, and the photo model at three strengths.
        crop_in = os.path.join(args.out, "crop")
        os.makedirs(crop_in, exist_ok=True)
        c = cv2.imread(os.path.join(clean_dir, args.crop))
        n = cv2.imread(os.path.join(noisy_dir, args.crop))
        y0, x0, s = 96, 96, 256
        cv2.imwrite(os.path.join(crop_in, "noisy.png"), n)
        outs = {}
        for strength in ("0.5", "1", "1.5"):
            d = os.path.join(args.out, "strength-" + strength)
            run([args.cli, "denoise", os.path.join(crop_in, "noisy.png"), d, "--model", "photo", "--strength", strength, "--overwrite",
                 "--threads", str(args.threads), "-q"])
            outs[strength] = cv2.imread(os.path.join(d, "noisy.png"))
        cut = lambda im: im[y0:y0 + s, x0:x0 + s]
        strip = np.hstack([label(cut(n), f"noisy {psnr(n, c):.2f} dB"),
                           label(cut(outs["1"]), f"photo model {psnr(outs['1'], c):.2f} dB"),
                           label(cut(c), "clean (mean of many shots)")])
        cv2.imwrite(os.path.join(args.figures, "realnoise-crop.png"), strip)
        strip = np.hstack([label(cut(outs[k]), f"--strength {k}: {psnr(outs[k], c):.2f} dB") for k in ("0.5", "1", "1.5")])
        cv2.imwrite(os.path.join(args.figures, "strength.png"), strip)


if __name__ == "__main__":
    main()
