#include <csignal>
#include <cmath>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <vector>

#include "util/atomic_file.h"
#include "cli/arch_options.h"
#include "cli/command.h"
#include "codec/codec_trainer.h"
#include "distributed/process_group.h"
#include "util/error.h"
#include "util/progress.h"
#include "train/train_fields.h"
#include "train/trainer.h"
#include "anomaly/reconstruct_trainer.h"
#include "util/text_format.h"

namespace bottleneck::cli {

namespace {

// --lambdas' default as the help shows it: TrainOptions' own, so the two cannot disagree.
std::string default_lambdas() {
  const std::vector<double> lambdas = TrainOptions().lambdas;
  std::ostringstream out;
  for (size_t i = 0; i < lambdas.size(); ++i) out << (i ? "," : "") << lambdas[i];
  return out.str();
}

// The only process-wide state: a signal handler can only talk through statics.
std::atomic<bool> stop_requested{false};
std::atomic<int> stop_signal{0};  // the signal that asked for the stop (0 = none)

extern "C" void on_stop_signal(int signal) {
  stop_signal.store(signal);
  stop_requested.store(true);
  // A second Ctrl-C kills at once, for a user who does not want to wait for the step.
  std::signal(SIGINT, SIG_DFL);
}

void add_train_options(cxxopts::Options& o) {
  o.add_options("Task")
      ("task", "denoise (the autoencoder, default), compress (the learned image codec) or reconstruct (normal "
               "images -> themselves: anomaly scores and latents)", cxxopts::value<std::string>())
      ("standardize", "reconstruct: take each image's own mean and spread out before the network (training, "
                      "scoring, encoding): 0.5 + 0.15 (x - mean) / std; for parts photographed under changing light")
      ("resize", "reconstruct: resize every image to N x N (training, scoring, encoding); default 0 = own size",
       cxxopts::value<int>())
      ("lambdas", "compress: rate points of one variable-rate model, comma-separated increasing lambdas of "
                  "lambda*255^2*MSE + bpp (default " + default_lambdas() + ")",
       cxxopts::value<std::string>())
      ("codec-n", "compress: hidden channels of the transforms (default 64)", cxxopts::value<int>())
      ("codec-m", "compress: latent channels (default 96)", cxxopts::value<int>())
      ("codec-activation", "compress: relu or gdn (default relu)", cxxopts::value<std::string>())
      ("codec-prior", "compress: step (one density of the latents, each rate its own quantisation step) or "
                      "gained (one density of every rate's gained latents, the first models') (default step)",
       cxxopts::value<std::string>());
  o.add_options("Data")
      ("data", "folder of clean training images (recursive)", cxxopts::value<std::string>())
      ("pairs", "folder of real noisy versions of --data, matched by relative path", cxxopts::value<std::string>())
      ("val", "folder of validation images (full images)", cxxopts::value<std::string>())
      ("val-pairs", "folder of real noisy versions of --val, matched by relative path: validation "
                    "(and the best checkpoint) on real noise instead of --val-noise", cxxopts::value<std::string>())
      ("init", "start from the weights of this model file (checkpoint or export of the same network)",
       cxxopts::value<std::string>())
      ("noise", "training noise, e.g. gaussian:25, gaussian:0-55, poisson:30, camera (default gaussian:25)", cxxopts::value<std::string>())
      ("val-noise", "validation noise (default: --noise)", cxxopts::value<std::string>())
      ("patch", "patch side in pixels (default 64)", cxxopts::value<int>())
      ("batch", "patches per step (default 16)", cxxopts::value<int>())
      ("no-augment", "no random flips / rotations")
      ("workers", "data loader threads (default 1)", cxxopts::value<int>())
      ("max-pixels", "skip larger images (default 268435456)", cxxopts::value<int64_t>())
      ("allow-skipped", "exit with status 0 even when unreadable images or folders were skipped "
                        "(they are still reported; default: status 1 once training is done)");
  o.add_options("Optimisation")
      ("iters", "total optimisation steps (default 5000)", cxxopts::value<int64_t>())
      ("epochs", "run length in passes over the training pixels, > 0 (overrides --iters)", cxxopts::value<double>())
      ("lr", "Adam learning rate (default 1e-3)", cxxopts::value<double>())
      ("lr-min", "final learning rate of the cosine schedule (default 1e-5)", cxxopts::value<double>())
      ("schedule", "cosine, step or constant (default cosine)", cxxopts::value<std::string>())
      ("step-size", "step schedule: steps between decays (default 2000)", cxxopts::value<int64_t>())
      ("step-gamma", "step schedule: decay factor (default 0.5)", cxxopts::value<double>())
      ("loss", "mse or l1 (default mse)", cxxopts::value<std::string>())
      ("precision", "fp32, or bf16: layers compute in bfloat16, weights and optimiser stay fp32 (default fp32)",
       cxxopts::value<std::string>());
  o.add_options("Run")
      ("out", "run directory to create", cxxopts::value<std::string>())
      ("config", "JSON file of training options (flags override it)", cxxopts::value<std::string>())
      ("resume", "continue the run in this directory", cxxopts::value<std::string>())
      ("val-every", "validate every N steps (default 500)", cxxopts::value<int64_t>())
      ("checkpoint-every", "write last.ckpt every N steps (default 500)", cxxopts::value<int64_t>())
      ("log-every", "log the loss to metrics.csv every N steps (default 50)", cxxopts::value<int64_t>())
      ("samples", "validation images drawn in samples/ (default 3)", cxxopts::value<int>())
      ("val-max-images", "validate on the first N images only (default all)", cxxopts::value<int>())
      ("stop-after", "stop (resumably) after N steps of this invocation", cxxopts::value<int64_t>())
      ("layout", "CPU memory layout: auto (the faster on this machine, measured once and kept in "
                 "RUN/layout.json), nchw or channels-last (default auto)", cxxopts::value<std::string>())
      ("time-limit", "stop (resumably) after this many minutes of this invocation", cxxopts::value<double>());
  o.add_options("Distributed (launched by torchrun, which sets WORLD_SIZE, RANK, MASTER_ADDR, ...)")
      ("dist-timeout", "seconds a process waits for the others (to connect, or within one step) before "
                       "every process fails with an error (default 300)", cxxopts::value<double>());
  add_arch_options(o, "unet-m");
}

// "34 unreadable inputs skipped (17 training, 17 validation; see the warnings above)"
std::string skipped_summary(const TrainResult& r) {
  const size_t n = r.skipped_training.size() + r.skipped_validation.size();
  return std::to_string(n) + " unreadable input" + (n == 1 ? "" : "s") + " skipped (" +
         std::to_string(r.skipped_training.size()) + " training, " + std::to_string(r.skipped_validation.size()) +
         " validation; see the warnings above)";
}

std::vector<double> parse_lambdas(const std::string& text) {
  std::vector<double> values;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size())
      throw UsageError("--lambdas \"" + text + "\": expected comma-separated numbers, e.g. 0.0067,0.025");
    values.push_back(v);
  }
  return values;
}

// Flags override what the config (or the run being resumed) says; absent flags leave it alone.
// The flags are the config's keys (train/train_fields.h), so each option is named once.
TrainOptions apply_flags(TrainOptions t, const cxxopts::ParseResult& r) {
  visit_train_fields(t, [&](const std::string& key, auto& field) {
    if (key == "augment" || key == "processes" || key == "lambdas") return;  // no flag of that name
    std::string flag = key;
    for (char& c : flag)
      if (c == '_') c = '-';
    if (r.count(flag)) field = r[flag].as<std::decay_t<decltype(field)>>();
  });
  // 0 in a config means "not set" (to_json writes it so); given as a flag it is a mistake.
  if (r.count("epochs") && !(t.epochs > 0)) throw UsageError("--epochs must be > 0 (without it, --iters sets the length)");
  if (r.count("iters") && !r.count("epochs")) t.epochs = 0;  // an explicit --iters wins over a config's epochs
  if (r.count("lambdas")) t.lambdas = parse_lambdas(r["lambdas"].as<std::string>());
  if (r.count("no-augment")) t.patches.augment = false;
  if (arch_options_given(r)) t.arch = arch_from_options(r, t.patches.patch);
  return t;
}

// The exit code of a run that ended without an error: a run stopped by a signal before its
// last step says so (128 + the signal, command.h), whatever else; then skipped inputs fail it.
int exit_code(bool finished, bool skipped, const cxxopts::ParseResult& r) {
  const int signal = stop_signal.load();
  if (!finished && signal != 0) return kExitSignalBase + signal;
  if (skipped && !r.count("allow-skipped")) return kExitFailure;
  return kExitSuccess;
}

// The summary of a codec run, as run_train's for a denoiser.
int finish_codec(const CodecTrainResult& result, const TrainOptions& options, const cxxopts::ParseResult& r,
                 const Context& ctx) {
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  std::string summary = "iteration " + std::to_string(result.iteration) + "/" + std::to_string(options.iterations) +
                        ", " + fixed(result.patches_per_second, 1) + " patches/s";
  if (!result.last.rates.empty()) {
    summary += ", validation mean PSNR " + fixed(result.last.mean_psnr, 2) + " dB, RD " + fixed(result.last.rd, 4) +
               " (best " + fixed(result.best_val_rd, 4) + ")";
  }
  if (result.finished) ctx.log.info("finished: ", summary, "; best model: ", options.out_dir, "/best.ckpt");
  else ctx.log.warn("stopped at ", summary, "; continue with: bottleneck train --resume ", options.out_dir);
  const bool skipped = !result.skipped_training.empty() || !result.skipped_validation.empty();
  if (skipped) {
    const size_t n = result.skipped_training.size() + result.skipped_validation.size();
    std::cerr << "train: " << n << " unreadable input" << (n == 1 ? "" : "s") << " skipped (see the warnings above)\n";
  }
  return exit_code(result.finished, skipped, r);
}

int run_train(const cxxopts::ParseResult& r, const Context& ctx) {
  TrainOptions options;
  TrainControl control;
  if (r.count("resume")) {
    if (r.count("config")) throw UsageError("--resume takes the run's own config; drop --config");
    const std::string dir = r["resume"].as<std::string>();
    options = train_options_from_json(read_file(dir + "/config.json"), options, dir + "/config.json");
    if (r.count("out") && r["out"].as<std::string>() != dir) throw UsageError("--out differs from --resume");
    options.out_dir = dir;
    control.resume = true;
  } else if (r.count("config")) {
    const std::string path = r["config"].as<std::string>();
    options = train_options_from_json(read_file(path), options, path);
  } else {
    options.arch = arch_from_options(r, options.patches.patch);
  }
  // A reconstruction model learns from the images as they are unless --noise asks for a
  // denoising autoencoder; the denoiser's default noise would be a surprise there.
  const bool fresh = !r.count("resume") && !r.count("config");
  if (fresh && !r.count("noise") && get_or<std::string>(r, "task", "") == "reconstruct") options.noise = "none";
  options = apply_flags(options, r);
  validate(options);

  control.stop = &stop_requested;
  control.stop_after = get_or<int64_t>(r, "stop-after", 0);
  control.layout = get_or<std::string>(r, "layout", control.layout);
  control.time_limit_s = 60.0 * get_or<double>(r, "time-limit", 0);
  control.progress_tty = is_terminal(2);
  if (control.stop_after < 0 || control.time_limit_s < 0) throw UsageError("--stop-after and --time-limit must be >= 0");
  control.distributed = distributed_options_from_environment([](const char* name) { return std::getenv(name); });
  control.distributed.timeout_s = get_or<double>(r, "dist-timeout", control.distributed.timeout_s);
  validate(control.distributed);
  Runtime runtime = ctx.runtime;
  runtime.device = device_for_rank(runtime.device, control.distributed);
  // Ranks other than 0 only warn and fail: rank 0 speaks for the run.
  const Context rank_ctx{runtime, control.distributed.rank == 0 ? ctx.log : Logger(LogLevel::kQuiet)};

  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  if (options.task == "compress") return finish_codec(train_codec(options, control, runtime, rank_ctx.log), options, r, rank_ctx);
  const TrainResult result = options.task == "reconstruct" ? train_reconstruct(options, control, runtime, rank_ctx.log)
                                                           : train(options, control, runtime, rank_ctx.log);
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);

  std::string summary = "iteration " + std::to_string(result.iteration) + "/" + std::to_string(options.iterations) +
                        ", " + fixed(result.patches_per_second, 1) + " patches/s";
  if (std::isfinite(result.last_val_psnr))
    summary += ", validation PSNR " + fixed(result.last_val_psnr, 2) + " dB (" +
               (std::isfinite(result.last_val_psnr_noisy) ? "noisy " + fixed(result.last_val_psnr_noisy, 2) + " dB, " : "") +
               "best " + fixed(result.best_val_psnr, 2) + ")";
  if (result.finished) {
    rank_ctx.log.info("finished: ", summary, "; best model: ", options.out_dir, "/best.ckpt");
  } else {
    // Printed even with --quiet: the user must learn how to continue.
    rank_ctx.log.warn("stopped at ", summary, "; continue with: bottleneck train --resume ", options.out_dir);
  }
  // Skipping keeps a long run going past one bad file; the exit status still tells scripts that
  // the model saw less data than the folders hold. Printed even with --quiet, like warnings.
  const bool skipped = !result.skipped_training.empty() || !result.skipped_validation.empty();
  if (skipped) std::cerr << "train: " << skipped_summary(result) << "\n";
  return exit_code(result.finished, skipped, r);
}

}  // namespace

Command train_command() {
  Command c;
  c.name = "train";
  c.summary = "train a denoising autoencoder (or, --task compress, an image codec) on a folder of clean images";
  c.add_options = add_train_options;
  c.run = run_train;
  return c;
}

}  // namespace bottleneck::cli
