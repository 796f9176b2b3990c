#!/usr/bin/python3
"""Bottleneck's performance benchmark: every measurement of issue 7 in one run, each against its
peer measured in the same run, printed as a markdown table (ratios, since machines are noisy).

    scripts/bench/run.sh [DATA_DIR] [--threads N] [--seconds S] [--quick] [--out DIR]

DATA_DIR defaults to ../shared/data/val/kodak24. Rows:
 1. folder denoising end to end: `bottleneck denoise` vs peer_denoise.py (torch.jit.load of the
    same exported file, OpenCV I/O, same threads)
 2. the default model vs OpenCV NLM and a DnCNN-sized network, in one process (`bottleneck bench`)
 3. the model's FLOP rate vs torch::mm's, 1 vs N threads, and with another process loading a core
 4. bf16 vs fp32: speed, and PSNR on Set12 at sigma 25
 5. training throughput: `bottleneck train` vs peer_train.py (same network, batch, patch, Adam)
 6. peak resident memory denoising one colour image of 12, 24 and 48 megapixels
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PY = "/usr/bin/python3"


def log(*args):
    print("bench:", *args, file=sys.stderr, flush=True)


def run(cmd, env=None, check=True):
    """Runs a command and returns (stdout, stderr); exits with its stderr if it fails."""
    full_env = dict(os.environ, **(env or {}))
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env, text=True)
    out, err = p.communicate()
    if check and p.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed ({p.returncode}):\n{err[-2000:]}")
    return out, err


def measure_rss(cmd):
    """Peak resident set size (MB) of one command, as /usr/bin/time -v reports it (wait4)."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed:\n{err[-2000:]}")
    return usage.ru_maxrss / 1024.0, err


def bench_json(cli, images, threads, seconds, extra, out_dir, name, env=None):
    path = os.path.join(out_dir, name + ".json")
    run([cli, "bench", images, "--threads", str(threads), "--seconds", str(seconds), "--json", path, "-q"] + extra, env=env)
    with open(path) as f:
        return json.load(f)


def mp_per_s_of_denoise(stderr):
    m = re.search(r"\(([\d.]+) MP in ([\d.]+) s\)", stderr)
    if not m:
        raise SystemExit("bench: cannot read the denoise summary:\n" + stderr[-1000:])
    return float(m.group(1)) / float(m.group(2))


class Hog:
    """Another process keeping one core busy, as a compile or a second job would."""

    def __enter__(self):
        self.p = subprocess.Popen([PY, "-c", "while True: pass"])
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        self.p.kill()
        self.p.wait()


def fmt(v, digits=2):
    return "-" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{digits}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="?", default=os.path.join(ROOT, "..", "shared", "data", "val", "kodak24"))
    ap.add_argument("--set12", default=os.path.join(ROOT, "..", "shared", "data", "val", "set12"),
                    help="gray images for the bf16 PSNR check")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seconds", type=float, default=3.0, help="minimum time of each in-process measurement")
    ap.add_argument("--quick", action="store_true", help="skip the 48 MP memory run and shorten the training runs")
    ap.add_argument("--out", default=os.path.join(ROOT, "out", "bench"))
    ap.add_argument("--bottleneck", default=os.path.join(ROOT, "build", "bottleneck"))
    args = ap.parse_args()
    cli, T, S = args.bottleneck, args.threads, args.seconds
    out = args.out
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    rows = []  # (row, measurement, bottleneck, reference, ratio text, goal, met)

    # 2 + 3a: everything in one process at the default thread count.
    log(f"in-process measurements on {args.data}, {T} threads")
    b = bench_json(cli, args.data, T, S, ["--tiles", "256,512,0"], out, "bench")
    model = b["model_path"]
    channels = b["channels"]
    model_spmp = b["model"]["seconds_per_megapixel"]
    flops = 2 * b["model_macs_per_pixel"]
    model_gflops = flops / model_spmp / 1e3
    info = f"{b['cpu']}, {T} threads"

    # 1. Folder denoising end to end, alternating the two tools, best of two each.
    log("folder denoising: bottleneck vs the Python peer")
    ours, peer, uncached = [], [], []
    for k in range(2):
        # The same job with LibTorch's own allocator instead of our block cache, for its effect.
        shutil.rmtree(os.path.join(out, "denoise-bn"), ignore_errors=True)
        _, err = run([cli, "denoise", args.data, os.path.join(out, "denoise-bn"), "--threads", str(T), "--model", model,
                      "--cpu-cache", "0"])
        uncached.append(mp_per_s_of_denoise(err))
        shutil.rmtree(os.path.join(out, "denoise-bn"), ignore_errors=True)
        _, err = run([cli, "denoise", args.data, os.path.join(out, "denoise-bn"), "--threads", str(T), "--model", model])
        ours.append(mp_per_s_of_denoise(err))
        o, _ = run([PY, os.path.join(ROOT, "scripts", "bench", "peer_denoise.py"), model, args.data,
                    os.path.join(out, "denoise-py"), "--threads", str(T)], env={"OPENBLAS_NUM_THREADS": "1"})
        peer.append(float(o.split("mp_per_s")[1]))
    r1 = max(ours) / max(peer)
    rows.append(("1", f"folder denoising, MP/s (decode, denoise, encode; {fmt(max(uncached), 3)} without the CPU block cache)", fmt(max(ours), 3), fmt(max(peer), 3) + " (Python peer)",
                 f"{r1:.2f}x", ">= 1.3x", r1 >= 1.3))
    # The two tools must agree on what they computed, or the comparison means nothing.
    diffs = []
    for name in sorted(os.listdir(os.path.join(out, "denoise-py"))):
        a = cv2.imread(os.path.join(out, "denoise-bn", name), cv2.IMREAD_UNCHANGED)
        p = cv2.imread(os.path.join(out, "denoise-py", name), cv2.IMREAD_UNCHANGED)
        if a is not None and p is not None and a.shape == p.shape:
            diffs.append(np.abs(a.astype(int) - p.astype(int)).mean())
    agree = f"outputs differ from the peer's by {max(diffs):.3f} grey levels on average (tiling vs whole image)" if diffs else ""

    # 2. Against the classics.
    nlm_spmp, dncnn_spmp = b["nlm"]["seconds_per_megapixel"], b["dncnn"]["seconds_per_megapixel"]
    better = b["model"]["psnr"] > b["nlm"]["psnr"]
    rows.append(("2a", f"s/MP vs OpenCV NLM (PSNR {fmt(b['model']['psnr'])} vs {fmt(b['nlm']['psnr'])} dB at sigma 25)",
                 fmt(model_spmp, 3), fmt(nlm_spmp, 3) + " (NLM)", f"{nlm_spmp / model_spmp:.2f}x",
                 "> 1x and better PSNR", nlm_spmp > model_spmp and better))
    rows.append(("2b", "s/MP vs a DnCNN-sized network (17 x 64 channels)", fmt(model_spmp, 3), fmt(dncnn_spmp, 3) + " (DnCNN-sized)",
                 f"{dncnn_spmp / model_spmp:.2f}x", ">= 3x", dncnn_spmp / model_spmp >= 3))

    # 3. The machine's limit.
    mm = b["matmul_gflops"]
    rows.append(("3a", f"model GFLOP/s ({flops / 1e3:.0f} kFLOP/pixel) vs fp32 torch::mm 2048^2", fmt(model_gflops, 1),
                 fmt(mm, 1) + " (mm)", f"{100 * model_gflops / mm:.0f}%", ">= 50%", model_gflops >= 0.5 * mm))
    log("thread scaling and a busy core")
    model_only = ["--no-nlm", "--no-dncnn", "--no-train", "--no-denormals", "--no-native", "--model", model]
    one = bench_json(cli, args.data, 1, S, model_only + ["--no-matmul"], out, "threads1")
    one_spmp = one["model"]["seconds_per_megapixel"]
    rows.append(("3b", f"model s/MP, {T} threads vs 1 thread", fmt(model_spmp, 3), fmt(one_spmp, 3) + " (1 thread)",
                 f"{one_spmp / model_spmp:.2f}x", "report", None))
    with Hog():
        busy_default = bench_json(cli, args.data, 0, S, model_only + ["--no-matmul"], out, "busy-default")
        busy_one = bench_json(cli, args.data, 1, S, model_only + ["--no-matmul"], out, "busy-1")
    bd, b1 = busy_default["model"]["seconds_per_megapixel"], busy_one["model"]["seconds_per_megapixel"]
    rows.append(("3c", "model s/MP with another process busy on one core: default threads vs 1 thread",
                 fmt(bd, 3), fmt(b1, 3) + " (1 thread)", f"{b1 / bd:.2f}x",
                 "no cliff: default no slower than 1.25x of 1 thread", bd <= 1.25 * b1))
    flush = b["model_flush_denormals"]["seconds_per_megapixel"]
    rows.append(("3d", "model s/MP, denormals flushed vs not", fmt(flush, 3), fmt(model_spmp, 3) + " (not flushed)",
                 f"{model_spmp / flush:.2f}x", "report", None))
    native = b["model_native"]["seconds_per_megapixel"]
    if native:
        rows.append(("3f", "model s/MP, optimised for inference (frozen, oneDNN layout) vs native modules", fmt(model_spmp, 3),
                     fmt(native, 3) + " (native)", f"{native / model_spmp:.2f}x", "report", None))
    tiles = {t["tile"]: t["seconds_per_megapixel"] for t in b["tiles"]}
    tiles[1024] = model_spmp  # the default
    tile_text = ", ".join(f"{'whole' if k == 0 else k}: {v:.3f}" for k, v in sorted(tiles.items(), key=lambda kv: kv[0] or 1e9))
    rows.append(("3e", "model s/MP by tile size (" + tile_text + ")", fmt(min(tiles.values()), 3), fmt(model_spmp, 3) + " (default 1024)",
                 f"{model_spmp / min(tiles.values()):.2f}x", "report", None))

    # 4. bf16.
    log("bf16 vs fp32")
    bf = bench_json(cli, args.data, T, S, model_only + ["--no-matmul", "--precision", "bf16"], out, "bf16")
    bf_spmp = bf["model"]["seconds_per_megapixel"]
    psnr = {}
    for prec in ("fp32", "bf16"):
        o, _ = run([cli, "eval", "--clean", args.set12, "--noise", "gaussian:25", "--no-nlm", "--precision", prec,
                    "--threads", str(T), "--json", os.path.join(out, f"set12-{prec}.json"), "-q"])
        with open(os.path.join(out, f"set12-{prec}.json")) as f:
            psnr[prec] = json.load(f)["levels"][0]["model"]["psnr"]
    loss = psnr["fp32"] - psnr["bf16"]
    speed = model_spmp / bf_spmp
    native = "native" if b["cpu_has_bf16"] else "emulated: this CPU has no AVX512-BF16"
    rows.append(("4", f"bf16 vs fp32 model speed ({native}); Set12 sigma 25 loss {loss:.3f} dB", fmt(bf_spmp, 3),
                 fmt(model_spmp, 3) + " (fp32)", f"{speed:.2f}x", ">= 1.6x, <= 0.05 dB",
                 (speed >= 1.6 and loss <= 0.05) if b["cpu_has_bf16"] else None))

    # 5. Training throughput: the same network, untrained, in both tools.
    log("training: bottleneck train vs the Python peer")
    arch = b["arch"]
    run_dir = os.path.join(out, "train")
    iters = 30 if args.quick else 100
    # Alternating the two tools, best of two each: single runs here varied by 10%.
    ours_runs, peer_runs = [], []
    for k in range(2):
        shutil.rmtree(run_dir, ignore_errors=True)
        _, err = run([cli, "train", "--arch", arch["kind"], "--channels", str(arch["in_channels"]),
                      "--widths", ",".join(map(str, arch["widths"])), "--convs", str(arch["convs_per_level"]),
                      "--head", arch["head"], "--upsample", arch["upsample"], "--activation", arch["activation"],
                      "--data", args.data, "--noise", "gaussian:0-55", "--batch", "8", "--patch", "96",
                      "--iters", str(iters), "--out", run_dir, "--threads", str(T), "--checkpoint-every", "100000"])
        ours_runs.append(float(re.search(r"([\d.]+) patches/s", err).group(1)))
        run([cli, "export", "--checkpoint", os.path.join(run_dir, "last.ckpt"), "--output", os.path.join(run_dir, "model.pt")])
        o, _ = run([PY, os.path.join(ROOT, "scripts", "bench", "peer_train.py"), os.path.join(run_dir, "model.pt"), args.data,
                    "--threads", str(T), "--seconds", str(S * 2), "--steps", str(iters)], env={"OPENBLAS_NUM_THREADS": "1"})
        peer_runs.append((float(o.split()[1]), float(o.split()[3])))
    ours_train = max(ours_runs)
    peer_compute, peer_loader = max(p[0] for p in peer_runs), max(p[1] for p in peer_runs)
    r5 = ours_train / peer_loader
    rows.append(("5", f"training patches/s, {iters}-step runs with loaders (compute only: ours {fmt(b['train_patches_per_second'])} channels-last, {fmt(b['train_patches_per_second_nchw'])} NCHW; peer "
                      f"{fmt(peer_compute)}; our loader alone {fmt(b['loader_patches_per_second'], 0)} on one thread)",
                 fmt(ours_train), fmt(peer_loader) + " (Python loop)", f"{r5:.2f}x", ">= 1.15x", r5 >= 1.15))

    # 6. Memory.
    log("peak memory on large images")
    first = sorted(f for f in os.listdir(args.data) if f.lower().endswith((".png", ".jpg", ".jpeg")))[0]
    base = cv2.imread(os.path.join(args.data, first), cv2.IMREAD_COLOR)
    rss = {}
    sizes = [(4000, 3000), (6000, 4000)] + ([] if args.quick else [(8000, 6000)])
    for w, h in sizes:
        mp = w * h // 1_000_000
        path = os.path.join(out, "mem", f"{mp}mp.jpg")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        img = cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(path, img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        rss[mp], _ = measure_rss([cli, "denoise", path, os.path.join(out, "mem", "out"), "--threads", str(T), "--model", model, "-q",
                                  "--overwrite"])
        os.remove(path)
        log(f"{mp} MP: peak RSS {rss[mp]:.0f} MB")
    top, low = max(rss), min(rss)
    # Growth per extra pixel: the decoded 8-bit input and the 8-bit output (3 + 3 bytes per
    # pixel) must exist whole, since OpenCV's codecs read and write whole images; everything
    # else (float windows, activations) is bounded by the tile size. "Flat" = no more than that
    # plus a third.
    slope = (rss[top] - rss[low]) * 2**20 / ((top - low) * 1e6)
    rows.append(("6", "peak RSS (MB) denoising one colour image: " + ", ".join(f"{k} MP {v:.0f}" for k, v in sorted(rss.items())) +
                 f"; growth {slope:.1f} bytes per extra pixel (the 8-bit input and output alone: 6)",
                 f"{rss[top]:.0f} at {top} MP", f"{rss[low]:.0f} at {low} MP", f"{rss[top] / rss[low]:.2f}x",
                 "<= 1536 MB at 48 MP, growth <= 8 bytes/pixel", (slope <= 8 and rss[top] <= 1536) if 48 in rss else None))

    lines = [f"Benchmark of {time.strftime('%Y-%m-%d')} on {info}; data {os.path.relpath(args.data, ROOT)}; model "
             f"{os.path.relpath(model, ROOT)}", "",
             "| # | measurement | Bottleneck | reference | ratio | goal | met |", "|---|---|--:|--:|--:|---|---|"]
    for r in rows:
        met = "n/a" if r[6] is None else ("yes" if r[6] else "**no**")
        lines.append(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {r[5]} | {met} |")
    if agree:
        lines += ["", "Row 1: " + agree + "."]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "bench.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
