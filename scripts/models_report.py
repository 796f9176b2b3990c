#!/usr/bin/python3
"""Writes models/README.md from measurements, never by hand.

For each shipped denoiser: what `bottleneck info` says about the file (ArchSpec, parameters,
MACs per pixel, noise, iterations), its recipe and training record (models/training/NAME:
config.json and metrics.csv), and `bottleneck eval` with the default models on Set12 (gray) and
Kodak24 (colour) at sigma 15 / 25 / 50, with the noisy input and OpenCV's non-local means measured
in the same run, against the published goals of issue 6.

    /usr/bin/python3 scripts/models_report.py [--data ../shared/data] [--threads N] [--max-images N]

Run it on an otherwise idle machine: seconds per megapixel are part of the table.
"""
import argparse
import csv
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Published numbers the shipped models are measured against (issue 6).
GOALS = {
    "gray": {"set": "Set12", "folder": "val/set12", "classic": "BM3D", "classic_db": [32.37, 29.97, 26.72],
             "learned": "DnCNN-S", "learned_db": [32.86, 30.44, 27.18]},
    "color": {"set": "Kodak24", "folder": "val/kodak24", "classic": "CBM3D", "classic_db": [34.28, 31.68, 28.46],
              "learned": "FFDNet", "learned_db": [34.63, 32.13, 28.98]},
}
SIGMAS = [15, 25, 50]


def run(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def info(cli, path):
    fields = {}
    for line in run([cli, "info", path]).splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def relative_data(path):
    """`/work/main/../shared/data/train/gray400` -> `../shared/data/train/gray400`."""
    marker = "shared/data/"
    i = path.find(marker)
    return "../" + path[i:] if i >= 0 else path


def training_record(name):
    folder = os.path.join(ROOT, "models", "training", name)
    config, rows = {}, []
    if os.path.exists(os.path.join(folder, "config.json")):
        with open(os.path.join(folder, "config.json")) as f:
            config = json.load(f)
    if os.path.exists(os.path.join(folder, "metrics.csv")):
        with open(os.path.join(folder, "metrics.csv")) as f:
            rows = list(csv.DictReader(f))
    return config, rows


def cpu_name():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def evaluate(cli, folder, threads, max_images, sigmas=SIGMAS, extra=()):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "eval.json")
        # The Gaussian tables are the gaussian family's: without --model, colour images would go
        # through the photo model.
        model = [] if "--model" in extra else ["--model", "gaussian"]
        cmd = [cli, "eval", "--clean", folder, "--noise", ",".join(f"gaussian:{s}" for s in sigmas),
               "--json", out, "-q", *model, *extra]
        if threads:
            cmd += ["--threads", str(threads)]
        if max_images:
            cmd += ["--max-images", str(max_images)]
        table = run(cmd)
        with open(out) as f:
            return cmd, table, json.load(f)


def fmt(x, digits=2):
    return "–" if x is None else f"{x:.{digits}f}"


def model_section(name, cli, data, threads, max_images):
    path = os.path.join(ROOT, "models", f"denoise-{name}.pt")
    goal = GOALS[name]
    lines = [f"## `denoise-{name}.pt`", ""]
    if not os.path.exists(path):
        return lines + ["Not exported yet.", ""], None
    meta = info(cli, path)
    config, rows = training_record(name)
    total = int(config.get("iters", 0))
    done = int(rows[-1]["iteration"]) if rows else 0
    hours = float(rows[-1]["elapsed_s"]) / 3600 if rows else float("nan")
    iteration = int(meta.get("iterations", "0"))
    macs = int(meta["MACs per pixel"])
    final = total > 0 and done >= total
    lines += [
        f"- **Status:** {'final' if final else 'intermediate'}: exported from the best checkpoint (iteration "
        f"{iteration}) of a run {'that finished' if final else 'now at'} iteration {done} of {total}.",
        f"- **File:** {os.path.getsize(path) / 1e6:.1f} MB, {meta['kind']}.",
        f"- **ArchSpec:** `{meta['arch']}`",
        f"- **Size:** {int(meta['parameters']):,} parameters; {macs / 1e3:.1f} k MACs "
        f"({2 * macs / 1e3:.1f} k FLOPs) per pixel; receptive radius {meta['receptive radius']}.",
        f"- **Noise:** blind, `{meta['noise']}` (sigma drawn per patch on the 0–255 scale).",
        f"- **Data:** `{relative_data(meta.get('training data', ''))}`.",
    ]
    if config:
        lines.append(
            f"- **Recipe:** `scripts/train_models.sh {name}`: {config['iters']} iterations, batch "
            f"{config['batch']} × {config['patch']}² patches (flips and rotations), Adam {config['lr']:g} with "
            f"a {config['schedule']} decay to {config['lr_min']:g}, {config['loss'].upper()} loss, seed "
            f"{config['seed']}; validated every {config['val_every']} iterations on "
            f"`{relative_data(config['val'])}` at `{config['val_noise']}`.")
        lines.append(
            f"- **Training wall time:** {hours:.2f} h for {done} iterations on {cpu_name()} "
            f"({os.cpu_count()} cores, CPU only), spread over working sessions "
            f"with `--resume` (the clock counts only time spent training; see "
            f"[training/{name}/curves.png](training/{name}/curves.png)).")
    lines.append("")

    cmd, table, result = evaluate(cli, os.path.join(data, goal["folder"]), threads, max_images)
    shown = ["bottleneck" if i == 0 else a for i, a in enumerate(cmd) if a not in ("--json",) and not a.endswith(
        "eval.json") and a != "-q"]
    shown = [relative_data(a) if "shared/data" in a else a for a in shown]
    table = table.strip().replace(ROOT + "/build/", "").replace(os.path.join(data, ""), "../shared/data/")
    lines += [f"### {goal['set']}", "", f"`{' '.join(shown)}`", "", table, ""]

    lines += [f"| sigma | noisy | NLM | this model | {goal['classic']} (published) | {goal['learned']} (published) "
              f"| goal: ≥ {goal['classic']} |", "| --: | --: | --: | --: | --: | --: | :-- |"]
    met_all = True
    for k, level in enumerate(result["levels"]):
        ours = level["model"]["psnr"]
        met = ours is not None and ours >= goal["classic_db"][k]
        met_all &= met
        lines.append(f"| {SIGMAS[k]} | {fmt(level['noisy']['psnr'])} | {fmt(level['nlm']['psnr'])} | **{fmt(ours)}** "
                     f"| {goal['classic_db'][k]:.2f} | {goal['learned_db'][k]:.2f} | "
                     f"{'met' if met else 'not met (%+.2f dB)' % (ours - goal['classic_db'][k])} |")
    lines.append("")

    # bf16 against the fp32 row just measured: same images, same noise (the seed is the same).
    _, _, bf16 = evaluate(cli, os.path.join(data, goal["folder"]), threads, max_images, [25],
                          ["--precision", "bf16", "--no-nlm"])
    fp32 = result["levels"][1]["model"]
    b = bf16["levels"][0]["model"]
    lines += [f"With `--precision bf16` at sigma 25: {fmt(b['psnr'])} dB against {fmt(fp32['psnr'])} dB in fp32 "
              f"({b['psnr'] - fp32['psnr']:+.3f} dB), {fmt(b['seconds_per_megapixel'], 3)} against "
              f"{fmt(fp32['seconds_per_megapixel'], 3)} s/MP "
              f"({fp32['seconds_per_megapixel'] / b['seconds_per_megapixel']:.2f}x the speed).", ""]
    return lines, met_all


# The bar and goal of the photo model on realnoise-cc15 (issue 17): above OpenCV NLM with the
# oracle h of 2..10 (36.34 dB measured there), and that + 1 dB.
PHOTO_BAR, PHOTO_GOAL, PHOTO_SET = 36.4, 37.4, "val/realnoise-cc15"


def photo_section(cli, data, threads, max_images):
    path = os.path.join(ROOT, "models", "denoise-photo.pt")
    lines = ["## `denoise-photo.pt`", ""]
    if not os.path.exists(path):
        return lines + ["Not exported yet.", ""], None
    meta = info(cli, path)
    config, rows = training_record("photo")
    total = int(config.get("iters", 0))
    done = int(rows[-1]["iteration"]) if rows else 0
    hours = float(rows[-1]["elapsed_s"]) / 3600 if rows else float("nan")
    final = total > 0 and done >= total
    lines += [
        f"- **Status:** {'final' if final else 'intermediate'}: exported from the best checkpoint (iteration "
        f"{meta.get('iterations')}, chosen on the real pairs) of a run {'that finished' if final else 'now at'} "
        f"iteration {done} of {total}.",
        f"- **File:** {os.path.getsize(path) / 1e6:.1f} MB; the same network as `denoise-color.pt` "
        f"(`{meta['arch']}`), so the same speed.",
        f"- **Noise:** `{meta['noise']}`: realistic camera noise (src/data/camera_noise.h: unprocessing to raw, "
        "Bayer mosaic, shot and read noise, demosaicing, colour processing, 8-bit, JPEG half the time).",
    ]
    if config:
        lines.append(
            f"- **Recipe:** `scripts/train_models.sh photo`: the Gaussian colour model fine-tuned (`--init`) for "
            f"{config['iters']} iterations, batch {config['batch']} × {config['patch']}², Adam {config['lr']:g} "
            f"with a {config['schedule']} decay to {config['lr_min']:g}; validated every {config['val_every']} "
            f"iterations on the real pairs `{relative_data(config['val'])}` (`--val-pairs`), which chose the "
            f"checkpoint and nothing else (no hyper-parameter was tuned on them).")
        lines.append(f"- **Training wall time:** {hours:.2f} h for {done} iterations on {cpu_name()} "
                     f"({os.cpu_count()} cores, one thread, bf16 where the CPU has it).")
    lines.append("")
    pairs = os.path.join(data, PHOTO_SET)
    scores = {}
    for family in ("photo", "gaussian"):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "eval.json")
            cmd = [cli, "eval", "--clean", os.path.join(pairs, "clean"), "--pairs", os.path.join(pairs, "noisy"),
                   "--model", family, "--json", out, "-q"] + (["--threads", str(threads)] if threads else [])
            run(cmd)
            with open(out) as f:
                scores[family] = json.load(f)["levels"][0]
    p, g = scores["photo"], scores["gaussian"]
    met = p["model"]["psnr"] >= PHOTO_BAR
    lines += [f"### {PHOTO_SET.split('/')[-1]} (real camera noise)", "",
              f"`bottleneck eval --clean {relative_data(pairs)}/clean --pairs {relative_data(pairs)}/noisy "
              "--model photo|gaussian`", "",
              "| | noisy | NLM, h from a noise estimate | Gaussian colour model | **photo model** | bar | goal |",
              "| --- | --: | --: | --: | --: | --: | --: |",
              f"| PSNR (dB) | {fmt(p['noisy']['psnr'])} | {fmt(p['nlm']['psnr'])} | {fmt(g['model']['psnr'])} | "
              f"**{fmt(p['model']['psnr'])}** | {PHOTO_BAR} ({'met' if met else 'not met'}) | {PHOTO_GOAL} "
              f"({'met' if p['model']['psnr'] >= PHOTO_GOAL else 'not met'}) |",
              f"| SSIM | {fmt(p['noisy']['ssim'], 4)} | {fmt(p['nlm']['ssim'], 4)} | {fmt(g['model']['ssim'], 4)} | "
              f"**{fmt(p['model']['ssim'], 4)}** | | |",
              f"| s/MP | | {fmt(p['nlm']['seconds_per_megapixel'], 3)} | {fmt(g['model']['seconds_per_megapixel'], 3)} | "
              f"{fmt(p['model']['seconds_per_megapixel'], 3)} | | |", "",
              "The bar is OpenCV NLM with the one h of 2..10 best on this set (an oracle: "
              "`scripts/bench/realnoise.py` measures it with the rest, see below), the goal that + 1 dB.", ""]
    # On Gaussian noise, for reference: the photo model is not made for it (use --model gaussian).
    _, _, gauss = evaluate(cli, os.path.join(data, "val/kodak24"), threads, max_images, extra=["--model", "photo", "--no-nlm"])
    lines += ["On Kodak24 with white Gaussian noise (not what it is for; `--model gaussian` is): " +
              ", ".join(f"sigma {SIGMAS[k]} {fmt(l['model']['psnr'])} dB" for k, l in enumerate(gauss["levels"])) + ".", ""]
    return lines, met


def measured_section(table_file, heading, intro):
    """A section around a table another script wrote to models/training/ (none when it is absent)."""
    path = os.path.join(ROOT, "models", "training", table_file)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [f"## {heading}", "", intro, "", f.read().strip(), ""]


def other_models_section(cli):
    """The shipped models that are not denoisers, described from their files (`bottleneck info`);
    their measurements live in the records they link to."""
    entries = [
        ("codec.bnm", "the learned image codec of `compress` and `decompress` (one model, every rate)",
         ["model id", "codec", "parameters", "MACs per pixel", "lambdas", "iterations", "best val RD"],
         "[training/codec-ladder/README](training/codec-ladder/README) (before it: [training/codec-ladder-trial/README](training/codec-ladder-trial/README), [training/codec-step/README](training/codec-step/README), [training/codec/README](training/codec/README)), RD benchmark against JPEG, WebP, JPEG 2000, "
         "AVIF and JPEG XL in [training/codec-rd.md](training/codec-rd.md), architecture sweep in "
         "[training/codec-sweep.md](training/codec-sweep.md)"),
        ("anomaly-tile.pt", "an example detector for `score` (64 x 64 gray surface images, calibrated)",
         ["arch", "parameters", "MACs per pixel", "training data", "iterations"],
         "[training/anomaly-tile/README.md](training/anomaly-tile/README.md), benchmarks in "
         "[training/anomaly.md](training/anomaly.md)"),
    ]
    lines = ["## Other shipped models", ""]
    for name, role, keys, record in entries:
        path = os.path.join(ROOT, "models", name)
        if not os.path.exists(path):
            continue
        fields = info(cli, path)
        lines.append(f"- **`{name}`** ({os.path.getsize(path) / 1e6:.1f} MB, {fields.get('kind', '?')}): {role}.")
        for key in keys:
            if key in fields:
                value = relative_data(fields[key]) if key == "training data" else fields[key]
                lines.append(f"  - {key}: `{value}`")
        lines.append(f"  - measured: {record}.")
    return lines + [""] if len(lines) > 2 else []


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    parser.add_argument("--cli", default=os.path.join(ROOT, "build", "bottleneck"))
    parser.add_argument("--threads", type=int, default=0, help="0 = the CLI's default (all hardware threads)")
    parser.add_argument("--max-images", type=int, default=0, help="for a quick look; 0 = all")
    parser.add_argument("--output", default=os.path.join(ROOT, "models", "README.md"))
    parser.add_argument("--note", default="", help="a sentence on how it was measured (e.g. other jobs running)")
    args = parser.parse_args()

    lines = [
        "# Models", "",
        "The denoisers Bottleneck ships, so `bottleneck denoise INPUT OUTPUT` works with no model argument: "
        "`denoise` and `eval` pick `denoise-gray.pt` for gray images and `denoise-photo.pt` for colour ones; "
        "`--model gaussian` picks the Gaussian pair (`denoise-gray.pt`, `denoise-color.pt`), `--model photo` the "
        "photo model, `--model FILE` any other. The build copies them next to the executable (`build/models/`) and "
        "`cmake --install` puts them in `PREFIX/share/bottleneck/models/`.", "",
        f"*This file is written by `/usr/bin/python3 scripts/models_report.py"
        f"{' --max-images %d' % args.max_images if args.max_images else ''}` "
        f"({datetime.date.today().isoformat()}, {cpu_name()}, {os.cpu_count()} cores); do not edit it by hand.* "
        "Protocol of the Gaussian tables: Gaussian noise added to the float image in [0, 1], neither clipped nor quantised; PSNR of "
        "the output clipped to [0, 1]; NLM is OpenCV's `fastNlMeansDenoising(Colored)` on the 8-bit noisy image "
        "with h set from the true sigma (the rule is in `src/denoise/evaluator.cc`). Timings are seconds per "
        "megapixel on this machine, all threads." + (" " + args.note if args.note else ""), "",
    ]
    summary = []
    for name in ("gray", "color"):
        section, met = model_section(name, args.cli, args.data, args.threads, args.max_images)
        lines += section
        summary.append(f"{name}: {'goals met' if met else 'goals not met' if met is not None else 'missing'}")
    section, met = photo_section(args.cli, args.data, args.threads, args.max_images)
    lines += section
    summary.append(f"photo: {'bar met' if met else 'bar not met' if met is not None else 'missing'}")
    lines += measured_section(
        "realnoise.md", "Real camera noise: models, NLM and the synthetic noise",
        "From `/usr/bin/python3 scripts/bench/realnoise.py --figures docs/images`: the shipped models and NLM "
        "(with h from a noise estimate, and with the oracle h) on the real pairs, and the synthetic camera noise "
        "measured against the real noise on the same clean images.")
    lines += measured_section(
        "arch-sweep.md", "Choice of architecture",
        "Candidates trained the same short way and measured on Set12; the shipped models use `l`. "
        "Quality per FLOP is the last column: what each 100 k MACs per pixel beyond the smallest "
        "network bought at sigma 25.")
    lines += measured_section(
        "precision-ab.md", "bf16 training",
        "Both runs began in fp32 and were resumed with `--precision bf16` (layers in bfloat16, weights "
        "and Adam in float32) at iterations 14339 (gray) and 2724 (colour), after this A/B run showed "
        "no loss of quality:")
    lines += other_models_section(args.cli)
    lines += [
        "## Training", "",
        "Training runs only while a working session is open, so it is spread over sessions: "
        "`scripts/train_models.sh NAME` resumes `~/.cache/bottleneck/runs/NAME` bit-exactly from its `last.ckpt`, "
        "and exports the best checkpoint to `models/denoise-NAME.pt` when the run is complete. "
        "`training/NAME/` holds the run's configuration, metrics and curves (and, while training is unfinished, "
        "its latest checkpoint, from which the script re-seeds the run on a machine that lacks it).", "",
    ]
    text = "\n".join(lines) + "\n"
    tmp = args.output + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, args.output)
    print(f"wrote {args.output}: " + "; ".join(summary))


if __name__ == "__main__":
    sys.exit(main())
