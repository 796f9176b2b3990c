// `bottleneck eval`: numbers checked against an independent computation, JSON, determinism.
#include <cmath>
#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/photo.hpp>
#include <torch/torch.h>

#include "util/atomic_file.h"
#include "formats/checkpoint.h"
#include "denoise/denoiser.h"
#include "denoise/evaluator.h"
#include "image/image_io.h"
#include "image/metrics.h"
#include "formats/model_file.h"
#include "nets/models.h"
#include "data/noise.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace bottleneck;
using bottleneck::test::run_cli;
using bottleneck::test::TempDir;

namespace {

// An untrained gray model whose output differs from its input (linear head).
std::string tiny_model(const TempDir& dir) {
  ArchSpec spec;
  spec.widths = {8, 16};
  spec.head = Head::kLinear;
  torch::manual_seed(5);
  Autoencoder model = make_model(spec);
  CheckpointInfo info;
  info.arch = spec;
  const std::string path = dir / "tiny.ckpt";
  save_checkpoint(path, *model, nullptr, info);
  return path;
}

// Clean images of odd sizes, one in colour (evaluated through its luma by a gray model), one nested.
void write_clean(const std::string& dir) {
  fs::create_directories(dir + "/sub");
  cv::imwrite(dir + "/a.png", tensor_to_mat(test::synthetic_image(1, 41, 57, 1), CV_8U));
  cv::imwrite(dir + "/b.png", tensor_to_mat(test::synthetic_image(3, 48, 35, 2), CV_8U));
  cv::imwrite(dir + "/sub/c.png", tensor_to_mat(test::synthetic_image(1, 36, 44, 3), CV_16U));
}

double independent_psnr(const torch::Tensor& x, const torch::Tensor& clean) {
  const double mse = (x.to(torch::kDouble) - clean.to(torch::kDouble)).pow(2).mean().item<double>();
  return 10 * std::log10(1.0 / mse);
}

}  // namespace

TEST(Eval, NlmRuleFollowsTheMeasuredFactors) {
  EXPECT_DOUBLE_EQ(nlm_h(15, 1), 15);
  EXPECT_DOUBLE_EQ(nlm_h(25, 1), 25);
  EXPECT_DOUBLE_EQ(nlm_h(50, 1), 40);
  EXPECT_DOUBLE_EQ(nlm_h(75, 1), 60);
  EXPECT_DOUBLE_EQ(nlm_h(25, 3), 15);
  EXPECT_DOUBLE_EQ(nlm_h(50, 3), 25);
}

TEST(Eval, NumbersMatchAnIndependentComputation) {
  TempDir dir;
  const std::string model_path = tiny_model(dir);
  write_clean(dir / "clean");
  EvalOptions o;
  o.model = model_path;
  o.clean = dir / "clean";
  o.noise = "gaussian:15,gaussian:25,poisson:30";
  o.seed = 5;
  o.tiling.tile = 16;  // tiled, still equal to whole-image inference
  Logger quiet(LogLevel::kQuiet);
  const EvalResult result = evaluate(o, quiet);
  ASSERT_EQ(result.levels.size(), 3u);
  EXPECT_EQ(result.channels, 1);

  auto model = load_model(model_path, torch::kCPU);
  const std::vector<std::string> names = {"a.png", "b.png", "sub/c.png"};
  for (size_t k = 0; k < 3; ++k) {
    const LevelResult& level = result.levels[k];
    const NoiseSpec spec = parse_noise(level.noise);
    ASSERT_EQ(level.images.size(), 3u);
    double noisy_sum = 0, nlm_sum = 0, model_sum = 0, ssim_sum = 0;
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(level.images[i].name, names[i]);
      const torch::Tensor clean = to_channels(load_image(dir / "clean/" + names[i]).pixels, 1);
      const torch::Tensor noisy = add_noise(clean, spec, file_noise_seed(5, names[i]));
      const torch::Tensor out = model->forward(noisy.unsqueeze(0)).squeeze(0).clamp(0, 1);
      // NLM on the clipped noisy image rounded to 8 bits, h from sigma (or the noise's RMS).
      const double sigma = spec.kind == NoiseKind::kGaussian
                               ? spec.a.lo
                               : 255 * (noisy - clean).to(torch::kDouble).pow(2).mean().sqrt().item<double>();
      cv::Mat denoised;
      cv::fastNlMeansDenoising(tensor_to_mat(noisy.clamp(0, 1), CV_8U), denoised,
                               static_cast<float>(nlm_h(sigma, 1)), 7, 21);
      const double p_noisy = independent_psnr(noisy.clamp(0, 1), clean);
      const double p_nlm = independent_psnr(mat_to_tensor(denoised), clean);
      const double p_model = independent_psnr(out, clean);
      EXPECT_NEAR(level.images[i].noisy_psnr, p_noisy, 1e-6);
      EXPECT_NEAR(level.images[i].nlm_psnr, p_nlm, 1e-6);
      EXPECT_NEAR(level.images[i].model_psnr, p_model, 1e-6);
      EXPECT_NEAR(level.images[i].nlm_sigma, sigma, 1e-9);
      noisy_sum += p_noisy;
      nlm_sum += p_nlm;
      model_sum += p_model;
      ssim_sum += ssim(out, clean);
    }
    EXPECT_NEAR(level.noisy.psnr, noisy_sum / 3, 1e-6);
    EXPECT_NEAR(level.nlm.psnr, nlm_sum / 3, 1e-6);
    EXPECT_NEAR(level.model.psnr, model_sum / 3, 1e-6);
    EXPECT_NEAR(level.model.ssim, ssim_sum / 3, 1e-6);
    EXPECT_GT(level.model.seconds_per_megapixel, 0);
    EXPECT_GT(level.nlm.seconds_per_megapixel, 0);
    // NLM is a real denoiser: it must beat the noisy input on these piecewise-smooth images.
    EXPECT_GT(level.nlm.psnr, level.noisy.psnr + 2) << level.noise;
  }
  // Sigma 15 is 24.6 dB before clipping.
  EXPECT_NEAR(result.levels[0].noisy.psnr, 24.6, 0.5);

  // Repeated evaluations agree exactly (fixed seeds per image).
  const EvalResult again = evaluate(o, quiet);
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_EQ(again.levels[k].noisy.psnr, result.levels[k].noisy.psnr);
    EXPECT_EQ(again.levels[k].nlm.psnr, result.levels[k].nlm.psnr);
    EXPECT_EQ(again.levels[k].model.psnr, result.levels[k].model.psnr);
  }
}

TEST(Eval, CliPrintsATableAndWritesEveryLevelToJson) {
  TempDir dir;
  const std::string model_path = tiny_model(dir);
  write_clean(dir / "clean");
  const std::string json_path = dir / "eval.json";
  auto r = run_cli("eval --model " + model_path + " --clean " + dir / "clean" +
                   " --noise gaussian:15,gaussian:25,saltpepper:0.05 --json " + json_path + " --seed 5 --threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const std::string noise : {"| gaussian:15 |", "| gaussian:25 |", "| saltpepper:0.05 |"})
    EXPECT_NE(r.output.find(noise), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("| noise | noisy PSNR"), std::string::npos) << r.output;

  const auto j = nlohmann::json::parse(read_file(json_path));
  ASSERT_EQ(j["levels"].size(), 3u);
  EXPECT_EQ(j["levels"][0]["noise"], "gaussian:15");
  EXPECT_EQ(j["levels"][1]["noise"], "gaussian:25");
  EXPECT_EQ(j["levels"][2]["noise"], "saltpepper:0.05");
  for (const auto& level : j["levels"]) {
    EXPECT_EQ(level["per_image"].size(), 3u);
    EXPECT_TRUE(level["model"]["psnr"].is_number());
    EXPECT_TRUE(level["noisy"]["ssim"].is_number());
  }
  EXPECT_TRUE(j["levels"][2]["nlm"]["psnr"].is_null()) << "NLM is skipped for impulse noise";
  EXPECT_TRUE(j["levels"][0]["nlm"]["psnr"].is_number());

  // The same numbers as the library computes in-process with the same seed.
  EvalOptions o;
  o.model = model_path;
  o.clean = dir / "clean";
  o.noise = "gaussian:25";
  o.seed = 5;
  o.nlm = false;
  const EvalResult result = evaluate(o, Logger(LogLevel::kQuiet));
  EXPECT_NEAR(j["levels"][1]["model"]["psnr"].get<double>(), result.levels[0].model.psnr, 1e-6);
  EXPECT_NEAR(j["levels"][1]["noisy"]["psnr"].get<double>(), result.levels[0].noisy.psnr, 1e-9);
  EXPECT_TRUE(std::isnan(result.levels[0].nlm.psnr));

  r = run_cli("eval --model " + model_path);  // no --clean
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = run_cli("eval --model " + model_path + " --clean " + dir / "clean" + " --noise gaussian:x");
  EXPECT_EQ(r.exit_code, 2) << r.output;
}
