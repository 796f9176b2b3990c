#include <cmath>
#include <iostream>
#include <iomanip>
#include <sstream>

#include "cli/command.h"
#include "cli/common_options.h"
#include "denoise/denoiser.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/text_format.h"

namespace bottleneck::cli {

namespace {

void add_denoise_options(cxxopts::Options& o) {
  o.add_options("Files")
      ("model", "photo or gaussian (shipped models), or a model file: a training checkpoint (.ckpt) or an "
                "exported TorchScript model "
                "(default: the shipped denoiser for each image, gray or colour)",
       cxxopts::value<std::string>())
      ("input", "an image file or a folder (searched recursively)", cxxopts::value<std::string>())
      ("output", "output folder; mirrors the input's relative paths, keeping format and bit depth "
                 "(for one input file, a name with an image extension is the output file)",
       cxxopts::value<std::string>())
      ("suffix", "write NAME.S.EXT (required when the output folder is the input folder or inside it)",
       cxxopts::value<std::string>())
      ("skip-existing", "leave files whose outputs exist (resume an interrupted job)")
      ("overwrite", "replace files already where outputs go (without it, or --skip-existing, the job refuses to start)")
      ("format", "write every output in this format: png, tif, jpg, webp, bmp, pgm or ppm (default: the input's)",
       cxxopts::value<std::string>())
      ("max-pixels", "refuse larger images (default 268435456)", cxxopts::value<int64_t>());
  o.add_options("Evaluation")
      ("add-noise", "add this noise before denoising, e.g. gaussian:25 (seeded by --seed)",
       cxxopts::value<std::string>())
      ("compare", "also write NAME.compare.png: clean | noisy | denoised (with --add-noise) or input | denoised");
  add_inference_options(o);
  o.add_options("Inference")
      ("strength", "how much of the model's change to keep: 1 = its estimate, 0 = unchanged, up to 2 "
                   "(default 1)", cxxopts::value<double>());
}

int run_denoise(const cxxopts::ParseResult& r, const Context& ctx) {
  DenoiseOptions o;
  o.model = get_or<std::string>(r, "model", o.model);
  if (!r.count("input") || !r.count("output"))
    throw UsageError("give the input and the output (a folder, or a file for one input file): denoise INPUT OUTPUT "
                     "(or --input/--output)");
  o.input = r["input"].as<std::string>();
  o.output = r["output"].as<std::string>();
  o.suffix = get_or<std::string>(r, "suffix", o.suffix);
  o.add_noise = get_or<std::string>(r, "add-noise", o.add_noise);
  o.seed = ctx.runtime.seed;
  o.compare = r.count("compare") > 0;
  o.skip_existing = r.count("skip-existing") > 0;
  o.overwrite = r.count("overwrite") > 0;
  o.format = get_or<std::string>(r, "format", o.format);
  o.max_pixels = get_or<int64_t>(r, "max-pixels", o.max_pixels);
  read_inference_options(r, ctx, o.tiling, o.precision);
  o.tiling.strength = get_or<double>(r, "strength", o.tiling.strength);
  o.progress_tty = is_terminal(2);

  const DenoiseReport report = denoise(o, ctx.log);
  if (!o.add_noise.empty() && report.denoised > 0)
    ctx.log.info("mean PSNR ", fixed(report.noisy_psnr, 2), " dB noisy -> ", fixed(report.denoised_psnr, 2),
                 " dB denoised; SSIM ", fixed(report.noisy_ssim, 3), " -> ", fixed(report.denoised_ssim, 3));
  // The summary is printed even with --quiet when something failed: the exit code needs a reason.
  if (report.failed > 0 || ctx.log.enabled(LogLevel::kInfo)) std::cerr << summary_line(report) << "\n";
  return report.failed == 0 ? 0 : 1;
}

}  // namespace

Command denoise_command() {
  Command c;
  c.name = "denoise";
  c.summary = "denoise an image or a folder of images with a trained model";
  c.positional_help = "[INPUT] [OUTPUT]";
  c.positionals = {"input", "output"};
  c.add_options = add_denoise_options;
  c.run = run_denoise;
  return c;
}

}  // namespace bottleneck::cli
