#include "data/camera_noise.h"

#include <cmath>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "util/error.h"
#include "data/noise.h"

namespace bottleneck {
namespace {

at::Generator generator(uint64_t seed) { return at::detail::createCPUGenerator(seed); }

// A smooth colour image (gradients and a soft blob), 3 x H x W in [0.05, 0.95].
torch::Tensor smooth_image(int64_t h, int64_t w) {
  auto y = torch::linspace(0, 1, h).view({1, h, 1}).expand({1, h, w});
  auto x = torch::linspace(0, 1, w).view({1, 1, w}).expand({1, h, w});
  auto blob = torch::exp(-((x - 0.4).pow(2) + (y - 0.6).pow(2)) * 8);
  return torch::cat({0.1 + 0.8 * x, 0.1 + 0.5 * y + 0.3 * blob, 0.9 - 0.8 * x * y}).clamp(0.05, 0.95).contiguous();
}

// Lag-1 horizontal correlation of a residual, per channel (over all rows).
double lag1_correlation(const torch::Tensor& r) {
  auto a = r.index({torch::indexing::Slice(), torch::indexing::Slice(), torch::indexing::Slice(0, -1)}).reshape(-1).to(torch::kDouble);
  auto b = r.index({torch::indexing::Slice(), torch::indexing::Slice(), torch::indexing::Slice(1)}).reshape(-1).to(torch::kDouble);
  a = a - a.mean();
  b = b - b.mean();
  return ((a * b).mean() / (a.std() * b.std())).item<double>();
}

TEST(CameraNoise, SensorVarianceFollowsThePoissonGaussianLaw) {
  const double shot = 4e-3, read = 2e-5;
  auto gen = generator(1);
  for (double level : {0.02, 0.1, 0.3, 0.7}) {
    auto bayer = torch::full({1, 256, 256}, level, torch::kFloat);
    auto noisy = add_sensor_noise(bayer, shot, read, gen);
    const double var = (noisy - bayer).to(torch::kDouble).var().item<double>();
    const double expected = shot * level + read;
    // 65536 samples: the variance's relative standard error is sqrt(2 / n) = 0.55%.
    EXPECT_NEAR(var / expected, 1.0, 0.03) << "level " << level;
    EXPECT_NEAR((noisy - bayer).mean().item<double>(), 0.0, 4 * std::sqrt(expected / 65536));
  }
}

TEST(CameraNoise, UnprocessThenProcessIsTheIdentityOnFlatColours) {
  // A flat colour survives mosaic + demosaicing exactly, so process(mosaic(unprocess(x))) = x
  // checks the inversions of tone, gamma, colour matrix and gains, and the Bayer pattern's
  // alignment with OpenCV's naming (a wrong pattern swaps red and blue).
  auto gen = generator(2);
  for (int trial = 0; trial < 8; ++trial) {
    const CameraDraw d = draw_camera(CameraNoiseParams{}, gen);
    for (auto colour : {std::vector<float>{0.8f, 0.3f, 0.1f}, {0.1f, 0.5f, 0.9f}, {0.5f, 0.5f, 0.5f}}) {
      auto x = torch::tensor(colour).view({3, 1, 1}).expand({3, 16, 16}).contiguous();
      for (bool edge_aware : {false, true}) {
        CameraDraw e = d;
        e.edge_aware = edge_aware;
        auto back = process(mosaic_rggb(unprocess(x, e)), e);
        EXPECT_LT((back - x).abs().max().item<double>(), 2e-3) << "trial " << trial << " colour " << colour[0];
      }
    }
  }
}

TEST(CameraNoise, ZeroNoiseIsTheIdentityUpToQuantisation) {
  auto x = smooth_image(48, 64);
  auto gen = generator(3);
  auto y = add_camera_noise(x, CameraNoiseParams{0, 0, 0}, gen);
  auto quantised = (x * 255).round() / 255;
  EXPECT_EQ(y.sizes(), x.sizes());
  EXPECT_LT((y - quantised).abs().max().item<double>(), 1e-6);
}

TEST(CameraNoise, NoiseIsSignalDependentSpatiallyAndCrossChannelCorrelated) {
  // What separates camera noise from white Gaussian noise, as measured on real pairs
  // (realnoise-cc15: lag-1 correlation 0.5-0.8, channels correlated 0.2-0.7).
  auto x = smooth_image(128, 128);
  auto gen = generator(4);
  CameraNoiseParams fixed{2e-3, 2e-3, 0};
  double corr = 0, cross = 0;
  const int trials = 6;
  for (int t = 0; t < trials; ++t) {
    auto r = add_camera_noise(x, fixed, gen) - x;
    corr += lag1_correlation(r) / trials;
    auto flat = r.reshape({3, -1}).to(torch::kDouble);
    cross += torch::corrcoef(flat).index({0, 1}).item<double>() / trials;
  }
  EXPECT_GT(corr, 0.3);
  EXPECT_LT(corr, 0.95);
  EXPECT_GT(std::abs(cross), 0.05);

  // Brighter regions carry more noise in linear space; after the tone curve the sRGB noise of a
  // dark flat patch and a mid-grey one differ.
  auto dark = torch::full({3, 64, 64}, 0.08f), mid = torch::full({3, 64, 64}, 0.5f);
  auto g1 = generator(5), g2 = generator(5);
  const double sd_dark = (add_camera_noise(dark, fixed, g1) - dark).std().item<double>();
  const double sd_mid = (add_camera_noise(mid, fixed, g2) - mid).std().item<double>();
  EXPECT_GT(sd_dark, 0.002);
  EXPECT_GT(sd_mid, 0.002);
  EXPECT_GT(std::abs(sd_mid - sd_dark) / sd_mid, 0.1);
}

TEST(CameraNoise, NoiseReductionSmoothsChromaHardAndLumaLightly) {
  torch::manual_seed(3);
  auto n = (torch::randn({3, 96, 96}) * 0.02).contiguous();
  const auto before = n.clone();
  auto luma = [](const torch::Tensor& t) { return 0.299 * t[0] + 0.587 * t[1] + 0.114 * t[2]; };
  auto cross = [](const torch::Tensor& t) {
    return torch::corrcoef(t.reshape({3, -1}).to(torch::kDouble)).index({0, 2}).item<double>();
  };

  EXPECT_TRUE(torch::equal(reduce_noise(n, 0, 0), n));  // no NR: the noise as it was
  auto chroma = reduce_noise(n, 2.0, 0);
  EXPECT_TRUE(torch::equal(n, before));                 // the input is not changed
  // Chroma NR keeps the luma noise and removes most of the colour-difference noise, so the
  // channels' noise becomes correlated (white noise: about 0.1 before, as R and B share Y).
  EXPECT_LT((luma(chroma) - luma(n)).abs().max().item<double>(), 1e-6);
  EXPECT_LT((chroma[2] - luma(chroma)).std().item<double>(), 0.2 * (n[2] - luma(n)).std().item<double>());
  EXPECT_LT(std::abs(cross(n)), 0.2);
  EXPECT_GT(cross(chroma), 0.7);
  // Luma NR lowers the luma noise and leaves the colour differences alone.
  auto lumanr = reduce_noise(n, 0, 0.5);
  EXPECT_LT(luma(lumanr).std().item<double>(), 0.8 * luma(n).std().item<double>());
  EXPECT_LT(((lumanr[0] - luma(lumanr)) - (n[0] - luma(n))).abs().max().item<double>(), 1e-6);
}

TEST(CameraNoise, LevelsSpanRealPhotosAndGrowWithShotNoise) {
  auto x = smooth_image(96, 96);
  double previous = 0;
  for (double shot : {1e-4, 1e-3, 1e-2}) {
    auto gen = generator(6);
    const double sd = (add_camera_noise(x, CameraNoiseParams{shot, shot, 0}, gen) - x).std().item<double>() * 255;
    EXPECT_GT(sd, previous * 1.5) << "shot " << shot;
    previous = sd;
  }
  // cc15 (ISO 1600-6400) measures 3-9 levels; the default range must reach past both ends.
  EXPECT_LT(previous, 40);
  EXPECT_GT(previous, 9);
}

TEST(CameraNoise, ReproducibleFromTheSeedAndJpegApplied) {
  auto x = smooth_image(64, 64).unsqueeze(0).repeat({4, 1, 1, 1});
  const NoiseSpec spec = parse_noise("camera:0.001-0.01/0.5");
  auto a = add_noise(x, spec, 11), b = add_noise(x, spec, 11), c = add_noise(x, spec, 12);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::equal(a, c));
  EXPECT_EQ(a.sizes(), x.sizes());
  // 8-bit outputs.
  EXPECT_LT(((a * 255) - (a * 255).round()).abs().max().item<double>(), 1e-4);

  // The same draws with JPEG on every image and on none differ only by the JPEG step.
  auto always = add_noise(x, parse_noise("camera:0.0001/1"), 5);
  auto never = add_noise(x, parse_noise("camera:0.0001/0"), 5);
  EXPECT_FALSE(torch::equal(always, never));
}

TEST(CameraNoise, GrayImagesStayGray) {
  auto x = smooth_image(40, 40).mean(0, true);
  auto gen = generator(8);
  auto y = add_camera_noise(x, CameraNoiseParams{1e-3, 1e-3, 0.5}, gen);
  EXPECT_EQ(y.sizes(), x.sizes());
  const double sd = (y - x).std().item<double>() * 255;
  EXPECT_GT(sd, 0.5);
  EXPECT_LT(sd, 20);
}

TEST(CameraNoise, SpecParsesAndRefusesBadRanges) {
  NoiseSpec d = parse_noise("camera");
  EXPECT_EQ(d.kind, NoiseKind::kCamera);
  EXPECT_DOUBLE_EQ(d.a.lo, 1e-4);
  EXPECT_DOUBLE_EQ(d.a.hi, 1.2e-2);
  EXPECT_DOUBLE_EQ(d.b.lo, 0.5);
  const NoiseSpec s = parse_noise("camera:0.001-0.01/0.25");
  EXPECT_EQ(to_string(s), "camera:0.001-0.01/0.25");
  EXPECT_EQ(to_string(parse_noise(to_string(d))), to_string(d));
  for (const char* bad : {"camera:0-0.01", "camera:2", "camera:0.001/1.5", "camera:0.001/0.1-0.2", "camera:x"})
    EXPECT_THROW(parse_noise(bad), UsageError) << bad;
  EXPECT_NO_THROW(parse_noise("camera:0"));
}

}  // namespace
}  // namespace bottleneck
