#include <filesystem>
#include <iostream>

#include "util/atomic_file.h"
#include "cli/command.h"
#include "cli/common_options.h"
#include "util/error.h"
#include "anomaly/anomaly_jobs.h"
#include "denoise/evaluator.h"
#include "image/image_io.h"
#include "util/progress.h"

namespace bottleneck::cli {

namespace {

void add_eval_options(cxxopts::Options& o) {
  o.add_options("Evaluation")
      ("model", "photo or gaussian (shipped models), or a model file: a training checkpoint (.ckpt) or an "
                "exported TorchScript model "
                "(default: the shipped gray or colour denoiser, as the first image is)",
       cxxopts::value<std::string>())
      ("clean", "folder of clean images (recursive) or one image (required)", cxxopts::value<std::string>())
      ("noise", "comma-separated noise specs, one row each (default gaussian:25)", cxxopts::value<std::string>())
      ("pairs", "real noisy images: a folder matched to --clean by relative path (or one image); "
                "evaluates on them instead of --noise", cxxopts::value<std::string>())
      ("json", "also write every number (per level and per image) to this JSON file", cxxopts::value<std::string>())
      ("no-nlm", "do not run OpenCV's non-local means baseline")
      ("nlm-h", "NLM's filter strength h (and hColor), 0-255 scale, for every image "
                "(default: set from each image's noise level)", cxxopts::value<double>())
      ("max-images", "evaluate the first N images only (default all)", cxxopts::value<int>())
      ("max-pixels", "refuse larger images (default 268435456)", cxxopts::value<int64_t>());
  add_inference_options(o);
  o.add_options("Anomaly detection (--task anomaly)")
      ("task", "denoise (default) or anomaly: image AUROC of a reconstruction model's scores and, with --masks, "
               "pixel AUROC and PRO", cxxopts::value<std::string>())
      ("normal", "folder of normal test images (repeatable)", cxxopts::value<std::vector<std::string>>())
      ("anomalous", "folder of anomalous test images, one category each (repeatable)",
       cxxopts::value<std::vector<std::string>>())
      ("masks", "folder of ground-truth masks: CATEGORY/STEM_mask.png (MVTec AD's layout) or STEM.png",
       cxxopts::value<std::string>());
}

// eval --task anomaly: flags -> AnomalyEvalOptions -> evaluate_anomaly.
int run_anomaly_eval(const cxxopts::ParseResult& r, const Context& ctx) {
  AnomalyEvalOptions o;
  if (!r.count("model")) throw UsageError("--model is required for --task anomaly");
  if (!r.count("normal") || !r.count("anomalous")) throw UsageError("--task anomaly needs --normal DIR and --anomalous DIR");
  o.model = r["model"].as<std::string>();
  o.normal = r["normal"].as<std::vector<std::string>>();
  o.anomalous = r["anomalous"].as<std::vector<std::string>>();
  o.masks = get_or<std::string>(r, "masks", "");
  o.max_pixels = get_or<int64_t>(r, "max-pixels", o.max_pixels);
  o.progress_tty = is_terminal(2);
  if (r.count("json")) {
    std::vector<std::string> inputs = {o.model};
    for (const auto* list : {&o.normal, &o.anomalous})
      for (const std::string& dir : *list) {
        inputs.push_back(dir);
        if (std::filesystem::is_directory(dir))
          for (const std::string& f : list_images(dir)) inputs.push_back(f);
      }
    refuse_output_over_input(r["json"].as<std::string>(), inputs, "--json file");
  }
  const AnomalyEvalResult result = evaluate_anomaly(o, ctx.log);
  std::cout << anomaly_eval_table(result) << std::flush;
  if (r.count("json")) {
    write_file_atomically(r["json"].as<std::string>(), anomaly_eval_json(result));
    ctx.log.info("wrote ", r["json"].as<std::string>());
  }
  if (result.failures.empty()) return 0;
  std::cerr << "eval: " << result.failures.size() << " inputs could not be read and are not in the numbers (see the warnings above)\n";
  return 1;
}

int run_eval(const cxxopts::ParseResult& r, const Context& ctx) {
  const std::string task = get_or<std::string>(r, "task", "denoise");
  if (task == "anomaly") return run_anomaly_eval(r, ctx);
  if (task != "denoise") throw UsageError("--task must be denoise or anomaly, got '" + task + "'");
  EvalOptions o;
  if (!r.count("clean")) throw UsageError("--clean DIR is required");
  o.model = get_or<std::string>(r, "model", o.model);
  o.clean = r["clean"].as<std::string>();
  o.noise = get_or<std::string>(r, "noise", o.noise);
  o.pairs = get_or<std::string>(r, "pairs", o.pairs);
  if (!o.pairs.empty() && r.count("noise")) throw UsageError("--pairs and --noise exclude each other (real pairs carry their own noise)");
  o.seed = ctx.runtime.seed;
  o.nlm = r.count("no-nlm") == 0;
  o.nlm_h = get_or<double>(r, "nlm-h", o.nlm_h);
  o.max_images = get_or<int>(r, "max-images", o.max_images);
  o.max_pixels = get_or<int64_t>(r, "max-pixels", o.max_pixels);
  read_inference_options(r, ctx, o.tiling, o.precision);
  o.progress_tty = is_terminal(2);

  if (r.count("json")) {
    // Checked before the (long) evaluation: the JSON must not replace the model or an image.
    std::vector<std::string> inputs = {o.model, o.clean, o.pairs};
    for (const std::string& dir : {o.clean, o.pairs})
      if (!dir.empty() && std::filesystem::is_directory(dir))
        for (const std::string& f : list_images(dir)) inputs.push_back(f);
    refuse_output_over_input(r["json"].as<std::string>(), inputs, "--json file");
  }
  const EvalResult result = evaluate(o, ctx.log);
  std::cout << eval_table(result) << std::flush;
  if (r.count("json")) {
    const std::string path = r["json"].as<std::string>();
    write_file_atomically(path, eval_json(result));
    ctx.log.info("wrote ", path);
  }
  // The table is for the readable files; the exit status tells scripts it is not the whole set.
  if (result.failures.empty()) return 0;
  const size_t n = result.failures.size();
  std::cerr << "eval: " << n << (n == 1 ? " input could not be read and is" : " inputs could not be read and are")
            << " not in the numbers (see the warnings above)\n";
  return 1;
}

}  // namespace

Command eval_command() {
  Command c;
  c.name = "eval";
  c.summary = "measure a model against its noisy input and non-local means (PSNR, SSIM, speed)";
  c.add_options = add_eval_options;
  c.run = run_eval;
  return c;
}

}  // namespace bottleneck::cli
