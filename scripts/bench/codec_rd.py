#!/usr/bin/python3
"""Rate-distortion benchmark of the learned codec (issue 22) against the codecs people use today.

    /usr/bin/python3 scripts/bench/codec_rd.py [--data ../shared/data/val/kodak24] [--threads 2]
        [--qualities 10,25,40,55,70,85,95] [--max-images N] [--codecs jpeg,webp,...]
        [--ours-args '--model FILE.bnm'] [--table models/training/codec-rd.md] [--figures docs/images]
    /usr/bin/python3 scripts/bench/codec_rd.py --self-test     (BD-rate, PCHIP and MS-SSIM checks)

In one run, on every image of DATA, at a sweep of settings each:
  ours         build/bottleneck compress IN -o OUT.bnc --quality Q [--ours-args], then decompress
               OUT.bnc -o DEC.ppm (skipped, and said so, while the CLI has no `compress` command or
               it fails, e.g. no shipped model: pass --ours-args '--model FILE.bnm')
  jpeg         OpenCV's JPEG (libjpeg, 4:2:0), in-process
  webp         OpenCV's WebP (libwebp, the same bytes as cwebp -m 4), in-process
  cwebp        cwebp -m 6 -q Q / dwebp                         (Debian webp)
  jpeg2000     opj_compress -I -mct 1 -r RATIO (.jp2) / opj_decompress   (libopenjp2-tools)
  avif         avifenc -s 6 -y 444 --min Q --max Q / avifdec   (libavif-bin)
  jpegxl       cjxl -d DISTANCE (effort 7) / djxl               (libjxl-tools)
A missing tool is skipped with a message naming its package (scripts/setup.sh installs them).

Measured: bpp from the whole output file (headers included); RGB PSNR (per image over all three
channels, then the mean over images); MS-SSIM (Wang, Simoncelli, Bovik 2003: 5 scales, 11x11
Gaussian window sigma 1.5, weights 0.0448 0.2856 0.3001 0.2363 0.1333, per RGB channel then the
mean, as pytorch_msssim and CompressAI's evaluation do), mean over images; each curve is the
(mean bpp, mean PSNR) of one setting. BD-rate: Bjontegaard's average rate difference with piecewise
cubic (PCHIP) interpolation of log-rate against PSNR over the PSNR range both curves cover (the
JVET/VCEG-AI11 update of the original cubic fit), on the points up to --bd-max-bpp. Speed: wall
time of whole commands (process start, PNG read for encoders, a PPM write for decoders: avifdec,
which writes no PPM, writes an uncompressed PNG; the two OpenCV codecs are timed in-process on the
same work: PNG read + encode + file write, file read + decode + PPM write), every tool at
--threads threads, as megapixels per second over the whole sweep.

Writes TABLE (markdown, with the command line, CPU and date at the top) and, with --figures,
FIGURES/codec-rd.png (PSNR and MS-SSIM against bpp, every codec).
"""
import argparse
import datetime
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from models_report import cpu_name  # noqa: E402  (one CPU-name reader for every report)

# The goals table (Kodak24, mean RGB PSNR, whole files), to check the peers against.
GOAL_BPP = (0.25, 0.5, 0.75, 1.0)
GOALS = {
    "jpeg": (24.9, 29.1, 31.2, 32.7),
    "cwebp": (28.6, 31.5, 33.6, 35.2),
    "jpeg2000": (29.2, 32.2, 34.3, 36.0),
    "avif": (29.9, 32.9, 35.1, 36.8),
}

# ---------------------------------------------------------------------------------------------
# Metrics


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 100.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _ssim_maps(x, y, data_range=255.0):
    """SSIM and contrast-structure maps of two float64 2-D arrays over the 'valid' region of an
    11x11 Gaussian window (sigma 1.5): the window never leaves the image, as in Wang et al."""
    g = cv2.getGaussianKernel(11, 1.5, cv2.CV_64F)
    f = lambda im: cv2.sepFilter2D(im, cv2.CV_64F, g, g, borderType=cv2.BORDER_REFLECT)[5:-5, 5:-5]
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = f(x), f(y)
    sxx, syy, sxy = f(x * x) - mx * mx, f(y * y) - my * my, f(x * y) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    return (2 * mx * my + c1) / (mx * mx + my * my + c1) * cs, cs


def ssim_gray(x, y):
    """Single-scale SSIM of two 2-D images (0..255), the core of ms_ssim."""
    return float(_ssim_maps(x.astype(np.float64), y.astype(np.float64))[0].mean())


def ms_ssim(a, b):
    """MS-SSIM (Wang et al. 2003) of two uint8 images, H x W or H x W x C: 5 scales, each halved by a
    2x2 mean; contrast-structure at every scale, luminance at the coarsest; per channel, then the
    mean over channels. Needs a short side of at least 176 pixels (11 << 4)."""
    a = a.astype(np.float64); b = b.astype(np.float64)
    if a.ndim == 2:
        a, b = a[:, :, None], b[:, :, None]
    if min(a.shape[:2]) < 11 * 16:
        raise ValueError(f"MS-SSIM needs a side of at least 176 pixels, got {a.shape[:2]}")
    out = []
    for k in range(a.shape[2]):
        x, y = a[:, :, k], b[:, :, k]
        value = 1.0
        for s, w in enumerate(MS_SSIM_WEIGHTS):
            ssim_map, cs_map = _ssim_maps(x, y)
            last = s == len(MS_SSIM_WEIGHTS) - 1
            value *= max(float((ssim_map if last else cs_map).mean()), 0.0) ** w
            if not last:
                h, wd = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
                x = x[:h, :wd].reshape(h // 2, 2, wd // 2, 2).mean(axis=(1, 3))
                y = y[:h, :wd].reshape(h // 2, 2, wd // 2, 2).mean(axis=(1, 3))
        out.append(value)
    return float(np.mean(out))


# ---------------------------------------------------------------------------------------------
# Curves: PCHIP interpolation, BD-rate


def _pchip_slopes(x, y):
    """Fritsch-Carlson derivatives of the monotone piecewise cubic Hermite interpolant (as SciPy's
    PchipInterpolator): 0 at local extrema, a weighted harmonic mean of the secant slopes elsewhere,
    one-sided three-point estimates at the ends."""
    h = np.diff(x); delta = np.diff(y) / h
    n = len(x)
    if n == 2:
        return np.array([delta[0], delta[0]])
    d = np.zeros(n)
    for k in range(1, n - 1):
        if delta[k - 1] * delta[k] > 0:
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k])
    for end, (h0, h1, d0, d1) in ((0, (h[0], h[1], delta[0], delta[1])), (n - 1, (h[-1], h[-2], delta[-1], delta[-2]))):
        v = ((2 * h0 + h1) * d0 - h0 * d1) / (h0 + h1)
        if np.sign(v) != np.sign(d0):
            v = 0.0
        elif np.sign(d0) != np.sign(d1) and abs(v) > abs(3 * d0):
            v = 3 * d0
        d[end] = v
    return d


def pchip_eval(x, y, xs):
    """The PCHIP interpolant through (x, y) (x strictly increasing) at xs (inside [x0, xn])."""
    x = np.asarray(x, float); y = np.asarray(y, float); d = _pchip_slopes(x, y)
    xs = np.atleast_1d(np.asarray(xs, float))
    k = np.clip(np.searchsorted(x, xs, side="right") - 1, 0, len(x) - 2)
    h = x[k + 1] - x[k]; t = xs - x[k]; delta = (y[k + 1] - y[k]) / h
    c2 = (3 * delta - 2 * d[k] - d[k + 1]) / h
    c3 = (d[k] + d[k + 1] - 2 * delta) / h ** 2
    return y[k] + d[k] * t + c2 * t ** 2 + c3 * t ** 3


def pchip_integral(x, y, lo, hi):
    """Exact integral of the PCHIP interpolant through (x, y) from lo to hi (x0 <= lo <= hi <= xn)."""
    x = np.asarray(x, float); y = np.asarray(y, float); d = _pchip_slopes(x, y)
    total = 0.0
    for k in range(len(x) - 1):
        a, b = max(lo, x[k]), min(hi, x[k + 1])
        if b <= a:
            continue
        h = x[k + 1] - x[k]; delta = (y[k + 1] - y[k]) / h
        c = (y[k], d[k], (3 * delta - 2 * d[k] - d[k + 1]) / h, (d[k] + d[k + 1] - 2 * delta) / h ** 2)
        prim = lambda t: c[0] * t + c[1] * t ** 2 / 2 + c[2] * t ** 3 / 3 + c[3] * t ** 4 / 4
        total += prim(b - x[k]) - prim(a - x[k])
    return total


def monotone(points):
    """The points of an RD curve (rate, quality) sorted by rate, keeping only those whose quality
    rises strictly (a setting that costs more bits for no gain is off the curve)."""
    out = []
    for r, q in sorted(points):
        if not out or q > out[-1][1]:
            out.append((r, q))
    return out


def bd_rate(test, anchor):
    """Bjontegaard delta rate of TEST against ANCHOR, each a list of (rate, PSNR): the mean ratio of
    the rates at equal PSNR over the PSNR range both cover, minus 1 (-0.2 = 20% fewer bits).
    None when the curves share no PSNR range or a curve has fewer than 2 points."""
    t, a = monotone(test), monotone(anchor)
    if len(t) < 2 or len(a) < 2:
        return None
    lo, hi = max(t[0][1], a[0][1]), min(t[-1][1], a[-1][1])
    if hi <= lo:
        return None
    it = pchip_integral([q for _, q in t], [np.log(r) for r, _ in t], lo, hi)
    ia = pchip_integral([q for _, q in a], [np.log(r) for r, _ in a], lo, hi)
    return float(np.exp((it - ia) / (hi - lo)) - 1)


def quality_at(points, rate):
    """PSNR of the curve at RATE by PCHIP in log-rate; None outside the measured range."""
    c = monotone(points)
    if len(c) < 2 or not c[0][0] <= rate <= c[-1][0]:
        return None
    return float(pchip_eval([np.log(r) for r, _ in c], [q for _, q in c], np.log(rate))[0])


# ---------------------------------------------------------------------------------------------
# Codecs


def timed(cmd):
    t = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        why = " ".join((p.stderr or p.stdout).split())[-400:]
        raise RuntimeError(f"{os.path.basename(cmd[0])} exits {p.returncode}: {why} (command: {shlex.join(cmd)})")
    return dt


class OpenCVCodec:
    """OpenCV's imencode in-process; timed on the same work a command does (read the PNG, encode,
    write the file; read the file, decode, write the PPM)."""

    def __init__(self, name, label, ext, flag_fn, flags_text, settings):
        self.name, self.label, self.ext, self.flag_fn, self.settings = name, label, ext, flag_fn, settings
        self.flags_text = flags_text
        self.setting_name = "quality"

    def encode(self, src, dst, q):
        t = time.perf_counter()
        ok, buf = cv2.imencode(self.ext, cv2.imread(src, cv2.IMREAD_COLOR), self.flag_fn(q))
        if not ok:
            raise RuntimeError(f"cv2.imencode({self.ext}) failed on {src}")
        with open(dst, "wb") as f:
            f.write(buf.tobytes())
        return time.perf_counter() - t

    def decode(self, src, dst):
        t = time.perf_counter()
        with open(src, "rb") as f:
            im = cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR)
        cv2.imwrite(dst, im)
        return time.perf_counter() - t

    def command(self):
        return f"cv2.imencode('{self.ext}', img, {self.flags_text})"


class ToolCodec:
    """A pair of command-line tools; enc(src, dst, setting) and dec(src, dst) give the argv."""

    def __init__(self, name, label, ext, tools, package, enc, dec, settings, setting_name, dec_ext=".ppm"):
        self.name, self.label, self.ext, self.tools, self.package = name, label, ext, tools, package
        self.dec_ext = dec_ext
        self.enc, self.dec, self.settings, self.setting_name = enc, dec, settings, setting_name

    def missing(self):
        return [t for t in self.tools if shutil.which(t) is None]

    def encode(self, src, dst, q):
        return timed(self.enc(src, dst, q))

    def decode(self, src, dst):
        return timed(self.dec(src, dst))

    def command(self):
        return shlex.join(self.enc("IN.png", "OUT" + self.ext, "S")) + "; " + shlex.join(self.dec("OUT" + self.ext, "DEC" + self.dec_ext))


class OursCodec(ToolCodec):
    """bottleneck compress / decompress. The container's extension is the CLI's business: OUT is
    named in an empty folder, and if the CLI writes another name there, that one file is taken."""

    def encode(self, src, dst, q):
        folder = os.path.dirname(dst)
        for f in os.listdir(folder):
            os.remove(os.path.join(folder, f))
        dt = timed(self.enc(src, dst, q))
        if not os.path.exists(dst):
            made = os.listdir(folder)
            if len(made) != 1:
                raise RuntimeError(f"bottleneck compress wrote {made or 'nothing'} for -o {dst}")
            os.rename(os.path.join(folder, made[0]), dst)
        return dt


def ours_available(cli):
    if not os.access(cli, os.X_OK):
        return False, f"{cli} not built"
    p = subprocess.run([cli, "compress", "--help"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return p.returncode == 0, f"`{os.path.relpath(cli, ROOT)} compress --help` exits {p.returncode}"


def ours_model_line(args):
    """Which model file ours ran with: --model in --ours-args, else the shipped one beside the CLI
    (what `bottleneck compress` itself picks), with its id and training iterations from `info`."""
    extra = shlex.split(args.ours_args)
    model = extra[extra.index("--model") + 1] if "--model" in extra[:-1] else \
        os.path.join(os.path.dirname(os.path.abspath(args.cli)), "models", "codec.bnm")
    p = subprocess.run([args.cli, "info", model], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    facts = dict(l.split(":", 1) for l in p.stdout.splitlines() if ":" in l)
    get = lambda k: " ".join(facts.get(k, "?").split())
    return (f"Ours: model `{model}` (id {get('model id')}, {get('iterations')} training iterations, "
            f"best validation RD {get('best val RD')}); qualities {args.qualities}.")


def make_codecs(args):
    th = str(args.threads)
    jpeg_flags = lambda q: [cv2.IMWRITE_JPEG_QUALITY, q] + (
        [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420]
        if hasattr(cv2, "IMWRITE_JPEG_SAMPLING_FACTOR") else [])  # 4:2:0 is also libjpeg's default
    qualities_lossy = [2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95]
    ours_extra = shlex.split(args.ours_args)
    return [
        OursCodec("ours", "ours (bottleneck)", args.ours_ext, [args.cli], "build/bottleneck (scripts/build.sh)",
                  lambda s, d, q: [args.cli, "--threads", th, "-q", "compress", s, "-o", d, "--quality", str(q), *ours_extra],
                  lambda s, d: [args.cli, "--threads", th, "-q", "decompress", s, "-o", d, *ours_extra],
                  args.qualities.split(","), "--quality"),
        OpenCVCodec("jpeg", "JPEG (OpenCV, 4:2:0)", ".jpg", jpeg_flags,
                    "[IMWRITE_JPEG_QUALITY, Q]) (libjpeg's default 4:2:0, checked in the SOF0 marker", [5, 8, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95]),
        OpenCVCodec("webp", "WebP (OpenCV)", ".webp", lambda q: [cv2.IMWRITE_WEBP_QUALITY, q],
                    "[IMWRITE_WEBP_QUALITY, Q]", qualities_lossy),
        ToolCodec("cwebp", "WebP (cwebp -m 6)", ".webp", ["cwebp", "dwebp"], "webp",
                  lambda s, d, q: ["cwebp", "-quiet", "-m", "6", "-q", str(q), "-mt", s, "-o", d],
                  lambda s, d: ["dwebp", "-quiet", "-mt", "-ppm", s, "-o", d], qualities_lossy, "-q"),
        # -r is the compression ratio against 24 bits per pixel: RATIO = 24 / target bpp.
        ToolCodec("jpeg2000", "JPEG 2000 9/7 (OpenJPEG)", ".jp2", ["opj_compress", "opj_decompress"], "libopenjp2-tools",
                  lambda s, d, r: ["opj_compress", "-i", s, "-o", d, "-I", "-mct", "1", "-r", str(r), "-threads", th],
                  lambda s, d: ["opj_decompress", "-i", s, "-o", d, "-threads", th],
                  [240, 160, 120, 80, 60, 48, 36, 30, 24, 18, 14, 11], "-r"),
        ToolCodec("avif", "AVIF (avifenc -s 6, 4:4:4)", ".avif", ["avifenc", "avifdec"], "libavif-bin",
                  lambda s, d, q: ["avifenc", "-s", "6", "-y", "444", "--min", str(q), "--max", str(q), "-j", th, s, d],
                  lambda s, d: ["avifdec", "-j", th, "--png-compress", "0", s, d],
                  [60, 56, 52, 48, 44, 40, 36, 32, 28, 24, 20, 16, 12], "--min/--max", dec_ext=".png"),
        ToolCodec("jpegxl", "JPEG XL (cjxl -e 7)", ".jxl", ["cjxl", "djxl"], "libjxl-tools",
                  lambda s, d, q: ["cjxl", s, d, "-d", str(q), "-e", "7", "--num_threads", th, "--quiet"],
                  lambda s, d: ["djxl", s, d, "--num_threads", th, "--quiet"],
                  [14, 10, 7, 5, 4, 3, 2.2, 1.6, 1.1, 0.7, 0.45], "-d"),
    ]


def tool_versions(codecs, results):
    probes = {"cwebp": ["cwebp", "-version"], "jpeg2000": ["opj_compress", "-h"], "avif": ["avifenc", "--version"],
              "jpegxl": ["cjxl", "--version"]}
    out = [f"OpenCV {cv2.__version__}"]
    for c in codecs:
        if c.name in probes and c.name in results:
            p = subprocess.run(probes[c.name], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            m = re.search(r"(?:openjp2 library |Version: |v)?(\d+\.\d+(?:\.\d+)?)", p.stdout)
            out.append(f"{c.tools[0]} {m.group(1) if m else '?'}")
    return out


def load_images(folder, max_images, tmp):
    """The images, each rewritten as a plain 8-bit PNG in TMP, which every codec then reads: Kodak's
    files carry gAMA/sRGB chunks, and OpenJPEG's PNG reader applies gAMA (kodim01 came back ~13 dB),
    while OpenCV (and so `bottleneck`) ignores it. Returns (name, plain PNG path, BGR pixels)."""
    names = sorted(f for f in os.listdir(folder) if f.lower().endswith(".png"))
    if max_images:
        names = names[:max_images]
    if not names:
        sys.exit(f"no PNG images in {folder}")
    os.makedirs(os.path.join(tmp, "input"), exist_ok=True)
    out = []
    for n in names:
        im = cv2.imread(os.path.join(folder, n), cv2.IMREAD_COLOR)
        path = os.path.join(tmp, "input", n)
        cv2.imwrite(path, im)
        out.append((n, path, im))
    return out


def png_read_speed(images):
    """OpenCV's PNG read of the inputs, MP/s: a part of every encoder's whole-command time."""
    px = sum(im.shape[0] * im.shape[1] for _, _, im in images) / 1e6
    t = time.perf_counter()
    for _, path, _ in images:
        cv2.imread(path, cv2.IMREAD_COLOR)
    return px / (time.perf_counter() - t)


def run_codec(codec, images, tmp):
    """Every setting on every image: per setting the mean bpp, PSNR, MS-SSIM, and the times."""
    work = os.path.join(tmp, codec.name)
    os.makedirs(work, exist_ok=True)
    rows = []
    for q in codec.settings:
        bpp, ps, ms, te, td, mp = [], [], [], 0.0, 0.0, 0.0
        for name, path, ref in images:
            enc = os.path.join(work, "enc", os.path.splitext(name)[0] + codec.ext)
            dec = os.path.join(work, "dec" + getattr(codec, "dec_ext", ".ppm"))
            os.makedirs(os.path.dirname(enc), exist_ok=True)
            te += codec.encode(path, enc, q)
            td += codec.decode(enc, dec)
            out = cv2.imread(dec, cv2.IMREAD_COLOR)
            if out is None or out.shape != ref.shape:
                raise RuntimeError(f"{codec.name} {q} {name}: decoded {None if out is None else out.shape}, want {ref.shape}")
            pixels = ref.shape[0] * ref.shape[1]
            bpp.append(os.path.getsize(enc) * 8 / pixels)
            ps.append(psnr(ref, out)); ms.append(ms_ssim(ref, out)); mp += pixels / 1e6
            os.remove(enc)
        rows.append({"setting": q, "bpp": float(np.mean(bpp)), "psnr": float(np.mean(ps)), "msssim": float(np.mean(ms)),
                     "enc_s": te, "dec_s": td, "mp": mp})
        print(f"  {codec.name} {codec.setting_name} {q}: {rows[-1]['bpp']:.3f} bpp, {rows[-1]['psnr']:.2f} dB, "
              f"MS-SSIM {rows[-1]['msssim']:.4f}, enc {mp / te:.2f} MP/s, dec {mp / td:.2f} MP/s", file=sys.stderr)
    return rows


def folder_speed(args, images, tmp):
    """Ours as a folder job: one `compress` of all the images and one `decompress` of the files it
    wrote, so LibTorch starts once (about a second, most of a one-photo command's time) instead of
    once per image. Returns (quality, encode MP/s, decode MP/s)."""
    q = args.qualities.split(",")[len(args.qualities.split(",")) // 2]
    src = os.path.dirname(images[0][1])
    enc, dec = os.path.join(tmp, "folder-enc"), os.path.join(tmp, "folder-dec")
    extra = shlex.split(args.ours_args)
    th = str(args.threads)
    te = timed([args.cli, "--threads", th, "-q", "compress", src, "-o", enc, "--quality", q, *extra])
    td = timed([args.cli, "--threads", th, "-q", "decompress", enc, "-o", dec, *extra])
    mp = sum(im.shape[0] * im.shape[1] for _, _, im in images) / 1e6
    return q, mp / te, mp / td


# ---------------------------------------------------------------------------------------------
# Report


def fmt(v, spec, none="—"):
    return none if v is None else format(v, spec)


def pct(v):
    return "—" if v is None else f"{100 * v:+.1f}%"


def report(args, codecs, results, skipped, images, started, loads, png, folder=None):
    curves = {n: [(r["bpp"], r["psnr"]) for r in rows if r["bpp"] <= args.bd_max_bpp] for n, rows in results.items()}
    label = {c.name: c.label for c in codecs}
    argv = ["/usr/bin/python3", os.path.relpath(os.path.abspath(sys.argv[0]), os.getcwd())] + sys.argv[1:]
    px = sum(im.shape[0] * im.shape[1] for _, _, im in images)
    L = [
        "# Codec rate-distortion benchmark (issue 22)",
        "",
        f"Command: `{shlex.join(argv)}`" + ("" if os.path.samefile(os.getcwd(), ROOT) else f" (in `{os.getcwd()}`)"),
        "",
        f"CPU: {cpu_name()}, {os.cpu_count()} hardware threads; every tool at {args.threads} threads. "
        f"Date: {started:%Y-%m-%d %H:%M} UTC. Load average at start / end: {loads[0]:.2f} / {loads[1]:.2f} "
        "(speeds are wall times on a machine shared with whatever else ran).",
        "",
        f"Data: `{os.path.relpath(args.data, ROOT)}`, {len(images)} images, {px / 1e6:.2f} MP. "
        "bpp = whole file bytes × 8 / pixels (headers included); PSNR over RGB per image, then the mean; "
        "MS-SSIM (Wang et al. 2003, 5 scales) per RGB channel then the mean; each point is one setting's means. "
        f"Curves for interpolation and BD-rate use the points up to {args.bd_max_bpp:g} bpp (the issue's range); "
        "all points are listed at the end.",
        "",
        f"Speeds time whole commands: process start, the PNG read (encoders), the decoded image's write (decoders: PPM, "
        "or for avifdec, which writes no PPM, an uncompressed PNG; a zlib PNG write would dominate: opj_decompress "
        f"took 0.9 s per Kodak image writing PNG, 0.08 s writing PPM). For scale, OpenCV reads these PNGs at {png:.1f} MP/s.",
        "",
        "Versions: " + "; ".join(tool_versions(codecs, results)) + ".",
        "",
    ]
    if "ours" in results:
        L += [ours_model_line(args), ""]
    if skipped:
        L += ["Skipped: " + "; ".join(f"{n} ({why})" for n, why in skipped) + ".", ""]
    L += ["## PSNR (dB) at fixed rates (PCHIP in log-bpp), and the issue's goals", "",
          "| codec | " + " | ".join(f"{b} bpp" for b in GOAL_BPP) + " | issue's goals |",
          "| --- |" + " --: |" * len(GOAL_BPP) + " --- |"]
    for n, pts in curves.items():
        goal = " / ".join(f"{g}" for g in GOALS[n]) if n in GOALS else ""
        L.append(f"| {label[n]} | " + " | ".join(fmt(quality_at(pts, b), ".2f") for b in GOAL_BPP) + f" | {goal} |")
    anchors = [a for a in ("jpeg", "webp", "cwebp") if a in curves]
    L += ["", "## BD-rate (PCHIP, over the common PSNR range; negative = fewer bits for equal PSNR) and speed", "",
          "| codec | " + " | ".join(f"vs {label[a]}" for a in anchors) + " | encode MP/s | decode MP/s | bpp range | setting |",
          "| --- |" + " --: |" * len(anchors) + " --: | --: | --- | --- |"]
    by_name = {c.name: c for c in codecs}
    for n, rows in results.items():
        enc = sum(r["mp"] for r in rows) / sum(r["enc_s"] for r in rows)
        dec = sum(r["mp"] for r in rows) / sum(r["dec_s"] for r in rows)
        bd = [pct(bd_rate(curves[n], curves[a])) if a != n else "0" for a in anchors]
        L.append(f"| {label[n]} | " + " | ".join(bd) + f" | {enc:.2f} | {dec:.2f} | "
                 f"{min(r['bpp'] for r in rows):.2f}–{max(r['bpp'] for r in rows):.2f} | `{by_name[n].setting_name}` |")
    L += ["", "— : the two curves share no PSNR range (or one has fewer than 2 points rising in PSNR)."]
    if folder:
        L += ["", f"Ours as one folder job (`compress` of the {len(images)} images in one process at `--quality "
              f"{folder[0]}`, then `decompress` of that folder, which writes zlib PNGs): encode {folder[1]:.2f} MP/s, "
              f"decode {folder[2]:.2f} MP/s."]
    if "ours" in curves:
        L += ["", "Ours against every codec: " + ", ".join(
            f"{label[n]} {pct(bd_rate(curves['ours'], curves[n]))}" for n in curves if n != "ours") + "."]
    if "jpeg" in results:
        caps = (1.0, args.bd_max_bpp, float("inf"))
        cut = lambda n, cap: [(r["bpp"], r["psnr"]) for r in results[n] if r["bpp"] <= cap]
        L += ["", "BD-rate against JPEG depends on the range of points it averages over "
              "(points up to " + ", ".join("all" if c == float("inf") else f"{c:g} bpp" for c in caps) + "): " +
              "; ".join(f"{label[n]} " + " / ".join(pct(bd_rate(cut(n, c), cut("jpeg", c))) for c in caps)
                        for n in results if n != "jpeg") + "."]
    L += ["", "Issue 22's reference: WebP ≈ −41% against JPEG; against OpenCV's WebP: cwebp -m 6 −2.1%, JPEG XL +8.0%, "
          "JPEG 2000 −16.8%, AVIF s6 4:4:4 −27% (`../shared/notes/codec-facts.md`). The bar for ours: ≤ −25% against "
          "OpenCV's JPEG; goal < 0 against cwebp -m 6.", "",
          "## Commands", ""]
    for n in results:
        L.append(f"- {label[n]}: `{by_name[n].command()}`, settings {', '.join(str(s) for s in by_name[n].settings)}")
    L += ["", "## Every point", "", "| codec | setting | bpp | PSNR (dB) | MS-SSIM | encode MP/s | decode MP/s |",
          "| --- | --: | --: | --: | --: | --: | --: |"]
    for n, rows in results.items():
        for r in rows:
            L.append(f"| {label[n]} | {r['setting']} | {r['bpp']:.4f} | {r['psnr']:.2f} | {r['msssim']:.4f} | "
                     f"{r['mp'] / r['enc_s']:.2f} | {r['mp'] / r['dec_s']:.2f} |")
    return ("\n".join(L) + "\n").replace(ROOT + "/", "")


STYLES = {"ours": ("tab:red", "o", 2.4), "jpeg": ("black", "s", 1.2), "webp": ("tab:green", "^", 1.2),
          "cwebp": ("tab:olive", "v", 1.2), "jpeg2000": ("tab:blue", "D", 1.2), "avif": ("tab:purple", "P", 1.2),
          "jpegxl": ("tab:orange", "X", 1.2)}


def plot(results, codecs, path, title):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no plot: matplotlib is missing (Debian python3-matplotlib, scripts/setup.sh)", file=sys.stderr)
        return
    label = {c.name: c.label for c in codecs}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for n, rows in results.items():
        colour, marker, lw = STYLES.get(n, ("gray", ".", 1.0))
        rows = sorted(rows, key=lambda r: r["bpp"])
        x = [r["bpp"] for r in rows]
        axes[0].plot(x, [r["psnr"] for r in rows], color=colour, marker=marker, ms=4, lw=lw, label=label[n])
        axes[1].plot(x, [-10 * np.log10(max(1 - r["msssim"], 1e-10)) for r in rows], color=colour, marker=marker,
                     ms=4, lw=lw, label=label[n])
    for ax, ylabel in zip(axes, ("RGB PSNR (dB)", "MS-SSIM (dB, −10·log10(1 − MS-SSIM))")):
        ax.set_xlim(0, 2.0); ax.set_xlabel("bits per pixel (whole files)"); ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylim(22, 42); axes[1].set_ylim(6, 24)
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Self-test


def self_test():
    """Known values of the BD-rate and MS-SSIM functions; exits non-zero on a failure."""
    rng = np.random.default_rng(0)
    curve = [(0.12, 26.1), (0.25, 28.4), (0.5, 31.0), (0.8, 33.2), (1.2, 35.0), (2.0, 37.5)]
    assert abs(bd_rate(curve, curve)) < 1e-12
    # Every rate x 0.8 at the same PSNR: exactly 20% fewer bits; the anchor the other way: +25%.
    scaled = [(0.8 * r, q) for r, q in curve]
    assert abs(bd_rate(scaled, curve) + 0.2) < 1e-12, bd_rate(scaled, curve)
    assert abs(bd_rate(curve, scaled) - 0.25) < 1e-12
    # Partial overlap: a shift up by 1 dB, then the same rates: fewer bits, and only the common range counts.
    up = [(r, q + 1.0) for r, q in curve]
    assert bd_rate(up, curve) < 0 and bd_rate(curve, up) > 0
    assert bd_rate([(1, 20), (2, 21)], [(1, 30), (2, 31)]) is None
    # A setting off the curve (more bits, lower quality) is dropped, not interpolated through.
    assert abs(bd_rate(curve + [(2.5, 30.0)], curve)) < 1e-12
    # PCHIP: through the points, exact on a straight line, the integral of a line, and SciPy's values.
    x = np.array([0.0, 1.0, 2.5, 3.0, 5.0]); y = np.array([0.0, 2.0, 2.5, 4.0, 4.5])
    assert np.allclose(pchip_eval(x, y, x), y)
    assert np.allclose(pchip_eval(x, 3 * x + 1, [0.3, 2.7, 4.9]), 3 * np.array([0.3, 2.7, 4.9]) + 1)
    assert abs(pchip_integral(x, 3 * x + 1, 0.5, 4.0) - (1.5 * (16 - 0.25) + 3.5)) < 1e-12
    try:
        from scipy.interpolate import PchipInterpolator
        ref = PchipInterpolator(x, y)
        xs = np.linspace(0, 5, 41)
        assert np.allclose(pchip_eval(x, y, xs), ref(xs), atol=1e-12)
        assert abs(pchip_integral(x, y, 0.7, 4.2) - ref.integrate(0.7, 4.2)) < 1e-12
        checked = "PCHIP equals SciPy's PchipInterpolator"
    except ImportError:
        checked = "SciPy absent: PCHIP not compared"
    # MS-SSIM: 1 for identical images; falls as noise grows; symmetric; the SSIM core equals
    # scikit-image's Gaussian SSIM (sigma 1.5, population covariance).
    img = cv2.GaussianBlur(rng.integers(0, 256, (256, 320, 3)).astype(np.uint8), (0, 0), 2)
    img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX)
    assert ms_ssim(img, img) == 1.0
    noisy = [np.clip(img + rng.normal(0, s, img.shape), 0, 255).astype(np.uint8) for s in (2, 5, 10, 20, 40)]
    values = [ms_ssim(img, n) for n in noisy]
    assert all(a > b for a, b in zip(values, values[1:])) and values[0] < 1.0 and values[-1] > 0, values
    assert abs(ms_ssim(img, noisy[2]) - ms_ssim(noisy[2], img)) < 1e-12
    assert ms_ssim(img[:, :, 0], noisy[2][:, :, 0]) < 1.0
    try:
        from skimage.metrics import structural_similarity
        a, b = img[:, :, 1].astype(np.float64), noisy[2][:, :, 1].astype(np.float64)
        ref = structural_similarity(a, b, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
        assert abs(ssim_gray(a, b) - ref) < 1e-6, (ssim_gray(a, b), ref)
        checked += "; SSIM core equals scikit-image's"
    except ImportError:
        checked += "; scikit-image absent: SSIM core not compared"
    print(f"self-test passed: BD-rate (self 0, rates x0.8 -> -20%, x1.25 -> +25%), PCHIP, MS-SSIM "
          f"(identical 1, noise sigma 2..40 -> {', '.join(f'{v:.4f}' for v in values)}); {checked}")


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "val", "kodak24"))
    ap.add_argument("--cli", default=os.path.join(ROOT, "build", "bottleneck"))
    ap.add_argument("--qualities", default="10,25,40,55,70,85,95", help="ours: --quality values, comma-separated")
    ap.add_argument("--ours-ext", default=".bnc", help="name of ours' files for -o (the CLI may pick its own)")
    ap.add_argument("--ours-args", default="", help="extra arguments for compress and decompress (e.g. '--model FILE')")
    ap.add_argument("--threads", type=int, default=2, help="threads of every tool (the issue's speed is at 2)")
    ap.add_argument("--max-images", type=int, default=0, help="first N images only (quick runs); 0 = all")
    ap.add_argument("--codecs", default="ours,jpeg,webp,cwebp,jpeg2000,avif,jpegxl", help="which, comma-separated")
    ap.add_argument("--table", default=os.path.join(ROOT, "models", "training", "codec-rd.md"), help="'' = no table")
    ap.add_argument("--figures", default="", help="folder for codec-rd.png (e.g. docs/images)")
    ap.add_argument("--bd-max-bpp", type=float, default=2.0, help="points above this rate stay out of BD-rates")
    ap.add_argument("--json", default=os.path.join(ROOT, "out", "codec-rd", "results.json"), help="every point, for reuse; '' = no")
    ap.add_argument("--self-test", action="store_true", help="check the BD-rate and MS-SSIM functions, then exit")
    args = ap.parse_args()
    if args.self_test:
        self_test()
        return
    cv2.setNumThreads(args.threads)
    started = datetime.datetime.utcnow()
    loads = [os.getloadavg()[0]]
    wanted = args.codecs.split(",")
    codecs = [c for c in make_codecs(args) if c.name in wanted]
    results, skipped, folder = {}, [], None
    with tempfile.TemporaryDirectory(prefix="codec_rd.") as tmp:
        images = load_images(args.data, args.max_images, tmp)
        print(f"{len(images)} images from {args.data}; {cpu_name()}; {args.threads} threads", file=sys.stderr)
        png = png_read_speed(images)
        for c in codecs:
            if c.name == "ours":
                ok, why = ours_available(args.cli)
                if not ok:
                    skipped.append(("ours", why + ": peers only"))
                    print(f"ours: skipped ({why}); measuring the peers only", file=sys.stderr)
                    continue
            elif isinstance(c, ToolCodec) and c.missing():
                skipped.append((c.name, f"{', '.join(c.missing())} not found; Debian package {c.package}"))
                print(f"{c.name}: skipped, {skipped[-1][1]}", file=sys.stderr)
                continue
            print(f"{c.label}:", file=sys.stderr)
            try:
                results[c.name] = run_codec(c, images, tmp)
                if c.name == "ours":
                    folder = folder_speed(args, images, tmp)
                    print(f"  ours as a folder job: enc {folder[1]:.2f} MP/s, dec {folder[2]:.2f} MP/s", file=sys.stderr)
            except RuntimeError as e:
                skipped.append((c.name, str(e).split(" (command: ")[0].replace(ROOT + "/", "")))
                print(f"{c.name}: skipped after an error: {e}", file=sys.stderr)
    loads.append(os.getloadavg()[0])
    text = report(args, codecs, results, skipped, images, started, loads, png, folder)
    print(text)
    if args.table:
        os.makedirs(os.path.dirname(os.path.abspath(args.table)), exist_ok=True)
        with open(args.table, "w") as f:
            f.write(text)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"command": sys.argv, "results": results, "skipped": skipped}, f, indent=1)
    if args.figures and results:
        os.makedirs(args.figures, exist_ok=True)
        plot(results, codecs, os.path.join(args.figures, "codec-rd.png"),
             f"{os.path.basename(os.path.normpath(args.data))} ({len(images)} images), whole files; {cpu_name()}")


if __name__ == "__main__":
    main()
