#include <iostream>
#include <sstream>

#include "util/atomic_file.h"
#include "bench/benchmark.h"
#include "cli/command.h"
#include "cli/common_options.h"
#include "util/error.h"

namespace bottleneck::cli {

namespace {

void add_bench_options(cxxopts::Options& o) {
  o.add_options("Benchmark")
      ("images", "image file or folder (recursive) to measure on (required)", cxxopts::value<std::string>())
      ("model", "model file (default: the shipped gray or colour denoiser, as the first image is)",
       cxxopts::value<std::string>())
      ("sigma", "Gaussian noise added to every image, 0-255 scale (default 25)", cxxopts::value<double>())
      ("seconds", "minimum time of each measurement (default 3)", cxxopts::value<double>())
      ("max-images", "use the first N images only (default all)", cxxopts::value<int>())
      ("tiles", "also time the model at these tile sizes, e.g. 256,512,0 (0 = whole image)",
       cxxopts::value<std::vector<int>>())
      ("no-nlm", "skip OpenCV's non-local means")
      ("no-dncnn", "skip the DnCNN-sized network")
      ("no-matmul", "skip the matrix-multiply rate")
      ("no-denormals", "skip the run with denormals flushed")
      ("no-native", "skip the run of the native (unoptimised) modules")
      ("no-train", "skip the training-step and loader timings")
      ("train-batch", "patches per training step (default 8)", cxxopts::value<int>())
      ("train-patch", "training patch side (default 96)", cxxopts::value<int>())
      ("json", "also write every number to this JSON file", cxxopts::value<std::string>());
  add_inference_options(o);
}

int run_bench(const cxxopts::ParseResult& r, const Context& ctx) {
  BenchmarkOptions o;
  if (!r.count("images")) throw UsageError("an image file or folder is required");
  o.images = r["images"].as<std::string>();
  o.model = get_or<std::string>(r, "model", o.model);
  o.sigma = get_or<double>(r, "sigma", o.sigma);
  o.min_seconds = get_or<double>(r, "seconds", o.min_seconds);
  o.max_images = get_or<int>(r, "max-images", o.max_images);
  o.tiles = get_or<std::vector<int>>(r, "tiles", o.tiles);
  o.nlm = r.count("no-nlm") == 0;
  o.dncnn = r.count("no-dncnn") == 0;
  o.matmul = r.count("no-matmul") == 0;
  o.flush_denormals_ab = r.count("no-denormals") == 0;
  o.native_ab = r.count("no-native") == 0;
  o.train = r.count("no-train") == 0;
  o.train_batch = get_or<int>(r, "train-batch", o.train_batch);
  o.train_patch = get_or<int>(r, "train-patch", o.train_patch);
  read_inference_options(r, ctx, o.tiling, o.precision);

  const BenchmarkResult result = run_benchmark(o, ctx.log);
  std::cout << benchmark_table(result) << std::flush;
  if (r.count("json")) {
    const std::string path = r["json"].as<std::string>();
    write_file_atomically(path, benchmark_json(result));
    ctx.log.info("wrote ", path);
  }
  return 0;
}

}  // namespace

Command bench_command() {
  Command c;
  c.name = "bench";
  c.summary = "time a model against non-local means, a DnCNN-sized network and this CPU's matmul rate";
  c.positional_help = "IMAGES";
  c.positionals = {"images"};
  c.add_options = add_bench_options;
  c.run = run_bench;
  return c;
}

}  // namespace bottleneck::cli
