// `bottleneck bench`: every measurement runs, covers the images, and the numbers hang together.
#include <cmath>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "bench/benchmark.h"
#include "formats/checkpoint.h"
#include "nets/models.h"
#include "runtime/runtime.h"
#include "test_util.h"

using namespace bottleneck;
using bottleneck::test::run_cli;
using bottleneck::test::TempDir;

namespace {

std::string untrained_model(const TempDir& dir, int channels, uint64_t seed) {
  ArchSpec spec;
  spec.in_channels = spec.out_channels = channels;
  spec.widths = {8, 16};
  torch::manual_seed(seed);
  Autoencoder model = make_model(spec);
  CheckpointInfo info;
  info.arch = spec;
  const std::string path = dir / ("m" + std::to_string(channels) + ".ckpt");
  save_checkpoint(path, *model, nullptr, info);
  return path;
}

}  // namespace

TEST(Benchmark, EveryMeasurementRunsOverTheImagesAndAgrees) {
  TempDir dir;
  test::write_synthetic_images(dir / "img", 3, 1, 40, 56, 11);
  BenchmarkOptions o;
  o.images = dir / "img";
  o.model = untrained_model(dir, 1, 3);
  o.min_seconds = 0;  // one pass over the images per method
  o.tiles = {16, 0};
  o.train_batch = 2;
  o.train_patch = 16;
  const Logger quiet(LogLevel::kQuiet);
  const BenchmarkResult r = run_benchmark(o, quiet);

  const double mp = 3 * 40 * 56 / 1e6;
  EXPECT_EQ(r.images, 3);
  EXPECT_EQ(r.channels, 1);
  EXPECT_GE(r.threads, 1);
  EXPECT_NEAR(r.model.megapixels, mp, 1e-12);
  EXPECT_GT(r.model.seconds, 0);
  EXPECT_TRUE(std::isfinite(r.model.psnr));
  // The unoptimised network computes the same images.
  EXPECT_NEAR(r.model_native.psnr, r.model.psnr, 1e-3);
  EXPECT_NEAR(r.model_flush.megapixels, mp, 1e-12);
  ASSERT_EQ(r.tile_timings.size(), 2u);
  EXPECT_EQ(r.tile_timings[0].first, 16);
  EXPECT_NEAR(r.tile_timings[1].second.megapixels, mp, 1e-12);
  // NLM at sigma 25 cleans these images well beyond the noisy input (about 20 dB).
  EXPECT_NEAR(r.noisy_psnr, 20.3, 0.5);
  EXPECT_GT(r.nlm.psnr, r.noisy_psnr + 3);
  // The DnCNN-sized network: 17 convolutions, 64 channels, speed only, at least one image.
  EXPECT_DOUBLE_EQ(r.dncnn_macs_per_pixel, 9.0 * (64 + 15 * 64 * 64 + 64));
  EXPECT_GE(r.dncnn.megapixels, 40 * 56 / 1e6 - 1e-12);
  EXPECT_TRUE(std::isnan(r.dncnn.psnr));
  EXPECT_GT(r.matmul_gflops, 0.1);
  EXPECT_GT(r.model_macs_per_pixel, 0);
  EXPECT_GT(r.train_patches_per_second, 0);
  EXPECT_GT(r.loader_patches_per_second, 0);

  const std::string table = benchmark_table(r);
  EXPECT_NE(table.find("| model | "), std::string::npos) << table;
  EXPECT_NE(table.find("| OpenCV NLM | "), std::string::npos) << table;
  EXPECT_NE(table.find("| DnCNN-sized"), std::string::npos) << table;
  const auto j = nlohmann::json::parse(benchmark_json(r));
  EXPECT_EQ(j["images"], 3);
  EXPECT_TRUE(j["dncnn"]["psnr"].is_null());
  EXPECT_NEAR(j["model"]["megapixels"].get<double>(), mp, 1e-12);
  EXPECT_EQ(j["tiles"].size(), 2u);
}

TEST(Benchmark, CpuFlagsMatchProcCpuinfo) {
  std::ifstream in("/proc/cpuinfo");
  if (!in) GTEST_SKIP() << "no /proc/cpuinfo";
  std::stringstream s;
  s << in.rdbuf();
  const std::string text = s.str();
  const bool has = text.find(" avx512_bf16") != std::string::npos || text.find(" amx_bf16") != std::string::npos;
  EXPECT_EQ(cpu_has_native_bf16(), has);
  EXPECT_NE(cpu_model_name(), "");
  // The description names the ISA the kernels depend on, as cpuinfo says.
  const std::string d = cpu_description();
  EXPECT_EQ(d.find(" AVX2") != std::string::npos || d.find("; AVX2") != std::string::npos,
            text.find(" avx2") != std::string::npos) << d;
  EXPECT_EQ(d.find("AVX-512") != std::string::npos, text.find(" avx512f") != std::string::npos) << d;
  EXPECT_EQ(d.find("AMX") != std::string::npos, text.find(" amx_bf16") != std::string::npos) << d;
  EXPECT_NE(d.find("OpenBLAS core "), std::string::npos) << d;
}

TEST(Benchmark, CliWritesJsonAndRejectsBadUsage) {
  TempDir dir;
  test::write_synthetic_images(dir / "img", 2, 3, 24, 30, 12);
  const std::string model = untrained_model(dir, 3, 4);

  const auto ok = run_cli("bench " + dir / "img" + " --model " + model +
                          " --seconds 0 --no-dncnn --no-train --no-matmul --threads 1 -q --json " + dir / "b.json");
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(ok.output.find("| OpenCV NLM |"), std::string::npos) << ok.output;
  std::ifstream f(dir / "b.json");
  const auto j = nlohmann::json::parse(f);
  EXPECT_EQ(j["channels"], 3);
  EXPECT_EQ(j["threads"], 1);
  EXPECT_TRUE(j["dncnn"]["psnr"].is_null());
  EXPECT_EQ(j["dncnn"]["megapixels"], 0);

  EXPECT_EQ(run_cli("bench").exit_code, 2);
  EXPECT_EQ(run_cli("bench " + dir / "img" + " --seconds -1").exit_code, 2);
  const auto missing = run_cli("bench " + dir / "nothing-here");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.output.find("nothing-here"), std::string::npos) << missing.output;
}
