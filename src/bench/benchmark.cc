#include "bench/benchmark.h"

#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <torch/torch.h>

#include "data/dataset.h"
#include "util/error.h"
#include "train/layout_probe.h"
#include "denoise/evaluator.h"
#include "image/metrics.h"
#include "formats/model_file.h"
#include "nets/models.h"
#include "data/noise.h"
#include "runtime/runtime.h"
#include "inference/shipped_models.h"
#include "util/text_format.h"

namespace bottleneck {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Sample {
  torch::Tensor clean, noisy;  // C x H x W floats
  double megapixels = 0;
};

// Runs `work` over the samples in order, cycling, until `min_seconds` have passed and every
// sample ran at least once when `all` (else at least one): short runs on a noisy machine
// mislead, and the slowest methods must not take minutes. `score` (optional) turns the first
// output of each sample into a PSNR, outside the timed region.
Timing time_over(const std::vector<Sample>& samples, double min_seconds, bool all,
                 const std::function<torch::Tensor(const Sample&)>& work) {
  Timing t;
  double psnr_sum = 0;
  size_t scored = 0;
  for (size_t i = 0;; ++i) {
    const Sample& s = samples[i % samples.size()];
    const auto start = Clock::now();
    torch::Tensor out = work(s);
    t.seconds += seconds_since(start);
    t.megapixels += s.megapixels;
    if (i < samples.size() && out.defined()) {
      psnr_sum += psnr(out.clamp(0, 1), s.clean);
      ++scored;
    }
    const bool covered = all ? i + 1 >= samples.size() : true;
    if (covered && t.seconds >= min_seconds) break;
  }
  // Speed-only runs and runs that stopped before the last sample have no mean to report.
  t.psnr = scored == samples.size() ? psnr_sum / static_cast<double>(scored) : kNaN;
  return t;
}

// DnCNN's shape (Zhang et al. 2017): conv+ReLU, 15 x (conv+BN+ReLU), conv, all 3x3 with 64
// channels. Batch norm folds into the convolutions at inference, so it is left out.
torch::nn::Sequential dncnn_sized(int channels) {
  torch::nn::Sequential net;
  auto conv = [](int in, int out) { return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1)); };
  net->push_back(conv(channels, 64));
  net->push_back(torch::nn::ReLU());
  for (int i = 0; i < 15; ++i) {
    net->push_back(conv(64, 64));
    net->push_back(torch::nn::ReLU());
  }
  net->push_back(conv(64, channels));
  return net;
}

// The BLAS gets as many threads as torch for this measurement only: the rest of the process keeps
// OpenBLAS at one thread (see apply_runtime), but the machine's rate needs every core.
double matmul_gflops(double min_seconds, int threads) {
  torch::NoGradGuard no_grad;
  set_openblas_threads(threads);
  struct Restore {
    ~Restore() { set_openblas_threads(1); }
  } restore;
  const int64_t n = 2048;
  const torch::Tensor a = torch::rand({n, n}), b = torch::rand({n, n});
  torch::Tensor c = torch::mm(a, b);  // warm-up: first-call allocation and BLAS start-up
  int64_t calls = 0;
  const auto start = Clock::now();
  double elapsed = 0;
  while (elapsed < min_seconds) {
    torch::mm_out(c, a, b);
    ++calls;
    elapsed = seconds_since(start);
  }
  return 2.0 * n * n * n * static_cast<double>(calls) / elapsed / 1e9;
}


// The loader over the images already decoded for the other measurements (the same files the
// options select), so it times patch making, not decoding them again.
double loader_patches_per_second(std::vector<torch::Tensor> images, int batch, int patch, double min_seconds) {
  PatchOptions po;
  po.batch = batch;
  po.patch = patch;
  const PatchDataset data(std::move(images), {}, po);
  const NoiseSpec noise = parse_noise("gaussian:0-55");
  int64_t made = 0;
  const auto start = Clock::now();
  double elapsed = 0;
  while (elapsed < min_seconds || made < 3) {
    TrainBatch b = data.batch(1, made, noise);
    ++made;
    elapsed = seconds_since(start);
  }
  return static_cast<double>(made * batch) / elapsed;
}


nlohmann::json timing_json(const Timing& t) {
  return {{"seconds", t.seconds}, {"megapixels", t.megapixels},
          {"seconds_per_megapixel", json_number<nlohmann::json>(t.seconds_per_megapixel())}, {"psnr", json_number<nlohmann::json>(t.psnr)}};
}

// 0 stands for "not measured" in the benchmark's records.
std::string measured_cell(double v, int digits) { return v != 0 ? table_cell(v, digits) : "-"; }

}  // namespace

BenchmarkResult run_benchmark(const BenchmarkOptions& options, const Logger& log) {
  if (options.images.empty()) throw UsageError("an image file or folder is required");
  if (options.min_seconds < 0) throw UsageError("--seconds must be >= 0");
  if (options.max_images < 0) throw UsageError("--max-images must be >= 0");
  if (options.train_batch < 1 || options.train_patch < 8) throw UsageError("--train-batch must be >= 1 and --train-patch >= 8");
  for (int tile : options.tiles)
    if (tile < 0) throw UsageError("--tiles: sizes must be >= 0 (0 = whole image)");
  std::vector<std::string> files = list_images(options.images);
  if (files.empty()) throw Error(options.images, "no images found");
  if (options.max_images > 0 && static_cast<int>(files.size()) > options.max_images) files.resize(options.max_images);

  BenchmarkResult r;
  r.threads = torch::get_num_threads();
  r.cpu = cpu_description();
  r.cpu_has_bf16 = cpu_has_native_bf16();

  std::vector<Sample> samples;
  for (const std::string& file : files) {
    Sample s;
    s.clean = load_image(file, options.max_pixels).pixels;
    if (!samples.empty()) s.clean = to_channels(s.clean, static_cast<int>(samples.front().clean.size(0)));
    s.megapixels = static_cast<double>(s.clean.size(1) * s.clean.size(2)) / 1e6;
    samples.push_back(std::move(s));
  }
  const int channels = static_cast<int>(samples.front().clean.size(0));
  r.channels = channels;
  r.images = static_cast<int>(samples.size());
  const NoiseSpec noise = parse_noise("gaussian:" + fixed(options.sigma, 6));
  double noisy_sum = 0;
  for (size_t i = 0; i < samples.size(); ++i) {
    samples[i].noisy = add_noise(samples[i].clean, noise, 1000 + i);
    noisy_sum += psnr(samples[i].noisy.clamp(0, 1), samples[i].clean);
  }
  r.noisy_psnr = noisy_sum / static_cast<double>(samples.size());

  const std::string family = shipped_family_of(options.model);
  r.model_path = options.model.empty() || !family.empty() ? shipped_model(channels, family) : options.model;
  const c10::ScalarType dtype = parse_precision(options.precision);
  std::unique_ptr<InferenceModel> model = load_model(r.model_path, options.tiling.device, load_options(options.precision));
  const ArchSpec arch = model->info().arch;
  if (arch.in_channels != channels)
    throw UsageError("the model takes " + std::to_string(arch.in_channels) + " channel(s), the images have " +
                     std::to_string(channels));
  r.arch = to_json(arch);
  r.model_macs_per_pixel = make_model(arch)->macs_per_pixel();
  log.info("bench: ", r.model_path, " on ", samples.size(), " image(s), ", r.threads, " thread(s)");

  {
    torch::InferenceMode inference;
    auto model_at = [&model](const TileOptions& tiling) {
      return [&model, tiling](const Sample& s) { return denoise_images(*model, {s.noisy}, tiling)[0]; };
    };
    // Warm-up over every image: TorchScript's executor profiles and specialises the graph on
    // its first runs, per input shape, which made a first timed pass up to 1.4x slower.
    for (const Sample& s : samples) denoise_images(*model, {s.noisy}, options.tiling);
    r.model = time_over(samples, options.min_seconds, true, model_at(options.tiling));
    log.info("bench: model ", fixed(r.model.seconds_per_megapixel(), 3), " s/MP, ", fixed(r.model.psnr, 2), " dB");

    if (options.flush_denormals_ab) {
      // Denormal floats take a slow microcode path on x86; flushing them to zero has cut
      // inference time several-fold in other tools. Measured, not assumed.
      at::globalContext().setFlushDenormal(true);
      r.model_flush = time_over(samples, options.min_seconds, true, model_at(options.tiling));
      at::globalContext().setFlushDenormal(false);
      r.model_flush.psnr = kNaN;  // same outputs up to denormals: the speed is the point
      log.info("bench: model, denormals flushed ", fixed(r.model_flush.seconds_per_megapixel(), 3), " s/MP");
    }

    if (options.native_ab && dtype == c10::ScalarType::Float && options.tiling.device.is_cpu()) {
      std::unique_ptr<InferenceModel> native = load_model(r.model_path, options.tiling.device, [] {
        LoadOptions native_options;
        native_options.optimize = false;
        return native_options;
      }());
      denoise_images(*native, {samples.front().noisy}, options.tiling);
      r.model_native = time_over(samples, options.min_seconds, true, [&](const Sample& s) {
        return denoise_images(*native, {s.noisy}, options.tiling)[0];
      });
      log.info("bench: model, native modules ", fixed(r.model_native.seconds_per_megapixel(), 3), " s/MP, ",
               fixed(r.model_native.psnr, 2), " dB");
    }

    for (int tile : options.tiles) {
      TileOptions tiling = options.tiling;
      tiling.tile = tile;
      Timing t = time_over(samples, options.min_seconds, true, model_at(tiling));
      t.psnr = kNaN;
      log.info("bench: model, tile ", tile, ": ", fixed(t.seconds_per_megapixel(), 3), " s/MP");
      r.tile_timings.emplace_back(tile, t);
    }

    if (options.nlm) {
      // OpenCV's own thread pool, at the thread count torch uses, as `eval` runs it.
      const int cv_threads = cv::getNumThreads();
      cv::setNumThreads(r.threads);
      r.nlm = time_over(samples, options.min_seconds, true,
                        [&](const Sample& s) { return nlm_denoise(s.noisy, options.sigma); });
      cv::setNumThreads(cv_threads);
      log.info("bench: NLM ", fixed(r.nlm.seconds_per_megapixel(), 3), " s/MP, ", fixed(r.nlm.psnr, 2), " dB");
    }

    if (options.dncnn) {
      torch::manual_seed(0);
      torch::nn::Sequential net = dncnn_sized(channels);
      net->eval();
      r.dncnn_macs_per_pixel = 9.0 * (channels * 64 + 15 * 64 * 64 + 64 * channels);
      // Speed only: at least one image, whatever min_seconds says, since it is the slowest.
      r.dncnn = time_over(samples, options.min_seconds, false,
                          [&](const Sample& s) { net->forward(s.noisy.unsqueeze(0)); return torch::Tensor(); });
      log.info("bench: DnCNN-sized ", fixed(r.dncnn.seconds_per_megapixel(), 3), " s/MP");
    }

    if (options.matmul) {
      r.matmul_gflops = matmul_gflops(std::max(options.min_seconds, 0.5), r.threads);
      log.info("bench: matrix multiply ", fixed(r.matmul_gflops, 1), " GFLOP/s");
    }
  }

  if (options.train) {
    r.train_batch = options.train_batch;
    r.train_patch = options.train_patch;
    r.train_patches_per_second_nchw =
        training_patches_per_second(arch, dtype, options.train_batch, options.train_patch, options.min_seconds, false);
    r.train_patches_per_second =
        training_patches_per_second(arch, dtype, options.train_batch, options.train_patch, options.min_seconds, true);
    std::vector<torch::Tensor> clean;
    for (const Sample& s : samples) clean.push_back(s.clean);
    r.loader_patches_per_second =
        loader_patches_per_second(std::move(clean), options.train_batch, options.train_patch, options.min_seconds);
    log.info("bench: training ", fixed(r.train_patches_per_second, 2), " patches/s compute only (NCHW layout ",
             fixed(r.train_patches_per_second_nchw, 2), "); loader ",
             fixed(r.loader_patches_per_second, 1), " patches/s");
  }
  return r;
}

std::string benchmark_table(const BenchmarkResult& r) {
  std::ostringstream s;
  const double model_flops = 2 * r.model_macs_per_pixel;
  auto gflops = [](double flops_per_pixel, const Timing& t) {
    return t.seconds > 0 ? flops_per_pixel * t.megapixels * 1e6 / t.seconds / 1e9 : kNaN;
  };
  const double model_gflops = gflops(model_flops, r.model);
  s << "model " << r.model_path << " (" << fixed(r.model_macs_per_pixel / 1e3, 1) << " k MAC/pixel), "
    << r.images << " image(s) in " << (r.channels == 3 ? "colour" : "gray") << " with Gaussian noise ("
    << fixed(r.noisy_psnr, 2) << " dB noisy), " << r.threads << " thread(s)\n"
    << "CPU: " << r.cpu << "\n\n"
    << "| method | s/MP | PSNR (dB) | GFLOP/s | model speed-up |\n|---|--:|--:|--:|--:|\n";
  auto row = [&](const std::string& name, const Timing& t, double flops_per_pixel) {
    if (t.seconds <= 0) return;
    s << "| " << name << " | " << fixed(t.seconds_per_megapixel(), 3) << " | " << measured_cell(t.psnr, 2) << " | "
      << measured_cell(gflops(flops_per_pixel, t), 1) << " | "
      << fixed(t.seconds_per_megapixel() / r.model.seconds_per_megapixel(), 2) << "x |\n";
  };
  row("model", r.model, model_flops);
  row("model, denormals flushed", r.model_flush, model_flops);
  row("model, native modules (not optimised)", r.model_native, model_flops);
  for (const auto& [tile, t] : r.tile_timings)
    row("model, tile " + (tile == 0 ? std::string("whole image") : std::to_string(tile)), t, model_flops);
  row("OpenCV NLM", r.nlm, kNaN);
  row("DnCNN-sized (17 x 64, random)", r.dncnn, 2 * r.dncnn_macs_per_pixel);
  s << "\n";
  if (r.matmul_gflops > 0)
    s << "fp32 matrix multiply (2048^2): " << fixed(r.matmul_gflops, 1) << " GFLOP/s; the model runs at "
      << fixed(100 * model_gflops / r.matmul_gflops, 0) << "% of it\n";
  if (r.train_patches_per_second > 0)
    s << "training (batches of " << r.train_batch << " x " << r.train_patch << "^2 patches): " << fixed(r.train_patches_per_second, 2)
      << " patches/s compute only, channels-last (" << fixed(r.train_patches_per_second_nchw, 2)
      << " in NCHW: " << (r.train_patches_per_second > r.train_patches_per_second_nchw ? "channels-last" : "NCHW")
      << " is faster here, which `train --layout auto` measures and picks); the loader alone makes " << fixed(r.loader_patches_per_second, 1)
      << " patches/s on one thread\n";
  s << "bf16: " << (r.cpu_has_bf16 ? "native on this CPU" : "not native on this CPU (no AVX512-BF16/AMX): emulated, slower than fp32") << "\n";
  return s.str();
}

std::string benchmark_json(const BenchmarkResult& r) {
  nlohmann::json j;
  j["arch"] = nlohmann::json::parse(r.arch, nullptr, false);
  j["channels"] = r.channels;
  j["threads"] = r.threads;
  j["cpu"] = r.cpu;
  j["cpu_has_bf16"] = r.cpu_has_bf16;
  j["images"] = r.images;
  j["noisy_psnr"] = json_number<nlohmann::json>(r.noisy_psnr);
  j["model_macs_per_pixel"] = r.model_macs_per_pixel;
  j["dncnn_macs_per_pixel"] = r.dncnn_macs_per_pixel;
  j["train_batch"] = r.train_batch;
  j["train_patch"] = r.train_patch;
  j["model"] = timing_json(r.model);
  j["model_path"] = r.model_path;
  j["model_flush_denormals"] = timing_json(r.model_flush);
  j["model_native"] = timing_json(r.model_native);
  j["nlm"] = timing_json(r.nlm);
  j["dncnn"] = timing_json(r.dncnn);
  j["matmul_gflops"] = json_number<nlohmann::json>(r.matmul_gflops);
  j["tiles"] = nlohmann::json::array();
  for (const auto& [tile, t] : r.tile_timings) {
    nlohmann::json e = timing_json(t);
    e["tile"] = tile;
    j["tiles"].push_back(e);
  }
  j["train_patches_per_second"] = json_number<nlohmann::json>(r.train_patches_per_second);
  j["train_patches_per_second_nchw"] = json_number<nlohmann::json>(r.train_patches_per_second_nchw);
  j["loader_patches_per_second"] = json_number<nlohmann::json>(r.loader_patches_per_second);
  return j.dump(2) + "\n";
}

}  // namespace bottleneck
