// Real noisy / clean pairs: eval --pairs, the noise estimator NLM's h comes from, validation on
// pairs and fine-tuning from a model file (train --val-pairs, --init).
#include <cmath>
#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <torch/torch.h>

#include "util/atomic_file.h"
#include "formats/checkpoint.h"
#include "data/dataset.h"
#include "image/image_io.h"
#include "image/metrics.h"
#include "nets/models.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace bottleneck;
using bottleneck::test::run_cli;
using bottleneck::test::TempDir;

namespace {

// Clean images and noisy partners (Gaussian noise, 8-bit like a photo) under the same names.
void write_pairs(const std::string& dir, int count, double sigma, uint64_t seed) {
  fs::create_directories(dir + "/clean/sub");
  fs::create_directories(dir + "/noisy/sub");
  torch::manual_seed(seed);
  for (int i = 0; i < count; ++i) {
    const std::string name = (i % 2 ? "sub/p" : "p") + std::to_string(i) + ".png";
    const torch::Tensor clean = test::synthetic_image(3, 64, 72, seed + i);
    const torch::Tensor noisy = (clean + sigma / 255 * torch::randn_like(clean)).clamp(0, 1);
    cv::imwrite(dir + "/clean/" + name, tensor_to_mat(clean, CV_8U));
    cv::imwrite(dir + "/noisy/" + name, tensor_to_mat(noisy, CV_8U));
  }
}

std::string tiny_colour_checkpoint(const TempDir& dir, const std::string& name) {
  ArchSpec spec;
  spec.in_channels = spec.out_channels = 3;
  spec.widths = {8, 16};
  torch::manual_seed(3);
  Autoencoder model = make_model(spec);
  CheckpointInfo info;
  info.arch = spec;
  const std::string path = dir / name;
  save_checkpoint(path, *model, nullptr, info);
  return path;
}

}  // namespace

TEST(NoiseEstimate, ReadsWhiteGaussianNoiseOnFlatAndTexturedImages) {
  torch::manual_seed(1);
  for (double sigma : {5.0, 15.0, 30.0}) {
    const torch::Tensor flat = torch::full({3, 128, 128}, 0.5) + sigma / 255 * torch::randn({3, 128, 128});
    EXPECT_NEAR(255 * estimate_noise_sigma(flat), sigma, 0.15 * sigma) << sigma;
    const torch::Tensor textured = test::synthetic_image(3, 128, 128, 4) + sigma / 255 * torch::randn({3, 128, 128});
    EXPECT_NEAR(255 * estimate_noise_sigma(textured), sigma, 0.35 * sigma) << sigma;
  }
  EXPECT_LT(estimate_noise_sigma(torch::full({1, 32, 32}, 0.3)), 1e-9);
  EXPECT_THROW(estimate_noise_sigma(torch::zeros({1, 8, 8})), Error);
}

TEST(RealPairs, EvalScoresTheNoisyPartnersAgainstTheirCleanImages) {
  TempDir dir;
  write_pairs(dir.path(), 3, 12, 20);
  const std::string model = tiny_colour_checkpoint(dir, "m.ckpt");
  const std::string json = dir / "eval.json";
  auto r = run_cli("eval --model " + model + " --clean " + dir / "clean" + " --pairs " + dir / "noisy" +
                   " --json " + json + " --threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("real noisy images"), std::string::npos) << r.output;
  const auto j = nlohmann::json::parse(read_file(json));
  ASSERT_EQ(j["levels"].size(), 1u);
  const auto& level = j["levels"][0];
  ASSERT_EQ(level["per_image"].size(), 3u);
  // The noisy PSNR is the partner file's own against its clean file.
  double sum = 0;
  for (const auto& image : level["per_image"]) {
    const std::string name = image["name"];
    const torch::Tensor c = load_image(dir / ("clean/" + name)).pixels, n = load_image(dir / ("noisy/" + name)).pixels;
    EXPECT_NEAR(image["noisy_psnr"].get<double>(), psnr(n, c), 1e-9) << name;
    EXPECT_NEAR(image["noise_rms"].get<double>(), 255 * (n - c).pow(2).mean().sqrt().item<double>(), 1e-4);
    EXPECT_NEAR(image["nlm_sigma"].get<double>(), 255 * estimate_noise_sigma(n), 1e-6);
    sum += image["noisy_psnr"].get<double>();
  }
  EXPECT_NEAR(level["noisy"]["psnr"].get<double>(), sum / 3, 1e-9);
  EXPECT_GT(level["nlm"]["psnr"].get<double>(), level["noisy"]["psnr"].get<double>());

  // A fixed h replaces the estimate; a missing partner is named; --noise with --pairs is refused.
  auto fixed_h = run_cli("eval --model " + model + " --clean " + dir / "clean" + " --pairs " + dir / "noisy" +
                         " --nlm-h 3 --threads 1");
  EXPECT_EQ(fixed_h.exit_code, 0) << fixed_h.output;
  EXPECT_NE(fixed_h.output.find("h = 3.00"), std::string::npos) << fixed_h.output;
  EXPECT_EQ(run_cli("eval --clean " + dir / "clean" + " --pairs " + dir / "noisy --noise gaussian:5").exit_code, 2);
  fs::remove(dir / "noisy/p0.png");
  auto missing = run_cli("eval --model " + model + " --clean " + dir / "clean" + " --pairs " + dir / "noisy --threads 1");
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.output.find("p0.png"), std::string::npos) << missing.output;
}

TEST(RealPairs, ValidationPairsLoadByRelativePath) {
  TempDir dir;
  write_pairs(dir.path(), 4, 8, 30);
  Logger log(LogLevel::kQuiet);
  const auto pairs = load_validation_pairs(dir / "clean", dir / "noisy", 3, log);
  ASSERT_EQ(pairs.size(), 4u);
  for (const auto& v : pairs) {
    EXPECT_TRUE(torch::equal(v.noisy, load_image(dir / ("noisy/" + v.name)).pixels)) << v.name;
    EXPECT_TRUE(torch::equal(v.clean, load_image(dir / ("clean/" + v.name)).pixels)) << v.name;
  }
  fs::remove(dir / "noisy/sub/p1.png");
  EXPECT_THROW(load_validation_pairs(dir / "clean", dir / "noisy", 3, log), Error);
}

TEST(RealPairs, TrainingValidatesOnPairsAndFineTunesFromAModelFile) {
  TempDir dir;
  write_pairs(dir.path(), 3, 10, 40);
  test::write_synthetic_images(dir / "train", 6, 3, 64, 64, 50);
  const std::string common = "train --data " + dir / "train" + " --arch unet --widths 8,16 --channels 3 --patch 32 "
                             "--batch 4 --threads 1 --layout nchw --iters 4 --val-every 2 --samples 0 --noise camera ";
  auto first = run_cli(common + "--val " + dir / "clean" + " --val-pairs " + dir / "noisy" + " --out " + dir / "a");
  ASSERT_EQ(first.exit_code, 0) << first.output;
  // Validation's noisy PSNR is the real pairs' (not a synthetic noise's).
  double noisy = 0;
  for (const auto& v : load_validation_pairs(dir / "clean", dir / "noisy", 3, Logger(LogLevel::kQuiet)))
    noisy += psnr(v.noisy, v.clean) / 3;
  const std::string csv = read_file(dir / "a/metrics.csv");
  const std::string row = csv.substr(csv.rfind("\n4,") + 1);
  std::vector<std::string> cells;
  std::stringstream ss(row);
  for (std::string c; std::getline(ss, c, ',');) cells.push_back(c);
  ASSERT_GT(cells.size(), 4u) << csv;
  EXPECT_NEAR(std::stod(cells[3]), noisy, 1e-4) << csv;

  // --init: step 0 of the new run starts from the finished run's weights (its first
  // validation equals a validation of those weights), and a different network is refused.
  auto tuned = run_cli(common + "--init " + dir / "a/last.ckpt --iters 1 --lr 1e-12 --lr-min 0 --val-every 1 --out " +
                       dir / "b --val " + dir / "clean --val-pairs " + dir / "noisy");
  ASSERT_EQ(tuned.exit_code, 0) << tuned.output;
  EXPECT_NE(tuned.output.find("starting from the weights of"), std::string::npos) << tuned.output;
  auto a = load_checkpoint(dir / "a/last.ckpt").model, b = load_checkpoint(dir / "b/last.ckpt").model;
  double diff = 0;
  auto pb = b->named_parameters();
  for (const auto& p : a->named_parameters()) diff = std::max(diff, (p.value() - pb[p.key()]).abs().max().item<double>());
  EXPECT_LT(diff, 1e-6);
  auto mismatch = run_cli("train --data " + dir / "train" + " --arch unet --widths 8,32 --channels 3 --patch 32 --batch 4 "
                          "--threads 1 --iters 1 --init " + dir / "a/last.ckpt --out " + dir / "c");
  EXPECT_EQ(mismatch.exit_code, 2) << mismatch.output;
  EXPECT_NE(mismatch.output.find("is not the run's"), std::string::npos) << mismatch.output;
}
