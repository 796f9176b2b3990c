#include "image/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "util/error.h"
#include "data/noise.h"
#include "test_util.h"

namespace bottleneck {
namespace {

TEST(Psnr, IdenticalIsInfinite) {
  auto x = test::synthetic_image(3, 16, 16, 1);
  EXPECT_EQ(psnr(x, x), std::numeric_limits<double>::infinity());
  EXPECT_EQ(psnr(x.unsqueeze(0), x.unsqueeze(0).clone()), std::numeric_limits<double>::infinity());
}

TEST(Psnr, KnownMse) {
  auto a = torch::zeros({1, 8, 8}, torch::kDouble);
  auto b = torch::full({1, 8, 8}, 0.1, torch::kDouble);
  EXPECT_NEAR(psnr(a, b), 20.0, 1e-12);
  EXPECT_NEAR(psnr(b, a), 20.0, 1e-12);
  EXPECT_NEAR(psnr(a, b, 2.0), 20.0 + 20 * std::log10(2.0), 1e-12);
  // float32 inputs are computed in double: only the rounding of 0.1 to float remains.
  EXPECT_NEAR(psnr(a.to(torch::kFloat), b.to(torch::kFloat)), 20.0, 1e-6);
  // Half the pixels off by 0.2: MSE 0.02.
  auto c = torch::zeros({1, 8, 8}, torch::kDouble);
  c.narrow(1, 0, 4).fill_(0.2);
  EXPECT_NEAR(psnr(a, c), 10 * std::log10(1 / 0.02), 1e-12);
}

TEST(Psnr, BatchIsMeanOfPerImageValues) {
  auto a = torch::zeros({2, 1, 8, 8}, torch::kDouble);
  auto b = a.clone();
  b[0].fill_(0.1);   // 20 dB
  b[1].fill_(0.01);  // 40 dB
  EXPECT_NEAR(psnr(a, b), 30.0, 1e-9);
  b[1].fill_(0);  // identical image: the mean is infinite
  EXPECT_EQ(psnr(a, b), std::numeric_limits<double>::infinity());
}

TEST(Psnr, RejectsMismatchedShapes) {
  EXPECT_THROW(psnr(torch::zeros({1, 8, 8}), torch::zeros({1, 8, 9})), UsageError);
  EXPECT_THROW(psnr(torch::zeros({1, 8, 8}), torch::zeros({3, 8, 8})), UsageError);
  EXPECT_THROW(psnr(torch::zeros({8, 8}), torch::zeros({8, 8})), UsageError);
  EXPECT_THROW(psnr(torch::zeros({1, 8, 8}), torch::zeros({1, 8, 8}), 0), UsageError);
}

TEST(Ssim, IdenticalIsOneAndSymmetric) {
  auto x = test::synthetic_image(3, 40, 48, 2);
  auto y = add_noise(x, parse_noise("gaussian:25"), 3).clamp(0, 1);
  EXPECT_NEAR(ssim(x, x), 1.0, 1e-12);
  double s = ssim(x, y);
  EXPECT_LT(s, 0.9);
  EXPECT_GT(s, 0.0);
  EXPECT_NEAR(ssim(y, x), s, 1e-12);
  // SSIM depends on the data only relative to data_range.
  EXPECT_NEAR(ssim(x.to(torch::kDouble) * 255, y.to(torch::kDouble) * 255, 255), s, 1e-10);
  // More noise, lower SSIM.
  auto z = add_noise(x, parse_noise("gaussian:50"), 3).clamp(0, 1);
  EXPECT_LT(ssim(x, z), s);
}

TEST(Ssim, ConstantImagesHaveClosedForm) {
  // No variance: SSIM is the luminance term (2 a b + C1) / (a^2 + b^2 + C1) everywhere.
  auto a = torch::full({1, 16, 16}, 0.5, torch::kDouble);
  auto b = torch::full({1, 16, 16}, 0.6, torch::kDouble);
  const double c1 = 1e-4;
  EXPECT_NEAR(ssim(a, b), (2 * 0.5 * 0.6 + c1) / (0.25 + 0.36 + c1), 1e-12);
}

TEST(Ssim, BatchIsMeanOfPerImageValues) {
  auto x0 = test::synthetic_image(1, 32, 32, 4), x1 = test::synthetic_image(1, 32, 32, 5);
  auto y0 = add_noise(x0, parse_noise("gaussian:15"), 1).clamp(0, 1);
  auto y1 = add_noise(x1, parse_noise("gaussian:40"), 2).clamp(0, 1);
  double expected = (ssim(x0, y0) + ssim(x1, y1)) / 2;
  EXPECT_NEAR(ssim(torch::stack({x0, x1}), torch::stack({y0, y1})), expected, 1e-12);
}

TEST(Ssim, RejectsMismatchedImages) {
  EXPECT_THROW(ssim(torch::zeros({1, 16, 16}), torch::zeros({1, 16, 17})), UsageError);
  EXPECT_THROW(ssim(torch::zeros({1, 1, 16, 16}), torch::zeros({2, 1, 16, 16})), UsageError);
}

TEST(Ssim, ImagesSmallerThanTheWindowUseTheTapsThatFit) {
  // A 1-pixel side leaves one tap: the statistics come from the other direction only, so a
  // 1 x W image scores like the 1-D SSIM of its row.
  const auto x = test::synthetic_image(1, 1, 300, 3), y = (x + 0.05 * torch::randn({1, 1, 300})).clamp(0, 1);
  const double s = ssim(x, y);
  EXPECT_TRUE(std::isfinite(s));
  EXPECT_GT(s, 0.0);
  EXPECT_LT(s, 1.0);
  EXPECT_NEAR(ssim(x, x), 1.0, 1e-12);
  EXPECT_NEAR(ssim(x.transpose(1, 2), y.transpose(1, 2)), s, 1e-12);
  EXPECT_NEAR(ssim(torch::full({1, 1, 1}, 0.3), torch::full({1, 1, 1}, 0.3)), 1.0, 1e-12);
  for (int side : {1, 2, 5, 10})
    EXPECT_TRUE(std::isfinite(ssim(torch::rand({3, side, 16}), torch::rand({3, side, 16})))) << side;
  // From 11 pixels on, the full window: unchanged results.
  const auto a = test::synthetic_image(1, 11, 11, 23), b = test::synthetic_image(1, 11, 11, 24);
  EXPECT_TRUE(std::isfinite(ssim(a, b)));
}

// Writes a float32 C x H x W tensor as raw little-endian float32 (the build host's order).
void write_raw(const std::string& path, const torch::Tensor& t) {
  auto c = t.to(torch::kFloat).contiguous();
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(c.data_ptr<float>()),
            static_cast<std::streamsize>(c.numel() * sizeof(float)));
  ASSERT_TRUE(out.good()) << path;
}

// Computes each pair's PSNR and SSIM with skimage, the reference the header promises to match.
TEST(Metrics, AgreeWithSkimage) {
  if (!test::system_python_has("skimage"))
    GTEST_SKIP() << test::kSystemPython << " lacks skimage (scripts/setup.sh installs python3-skimage)";
  struct Pair { torch::Tensor a, b; };
  std::vector<Pair> pairs;
  auto noisy = [](const torch::Tensor& x, const char* spec, uint64_t seed, bool clip) {
    auto y = add_noise(x, parse_noise(spec), seed);
    return clip ? y.clamp(0, 1) : y;
  };
  auto gray = test::synthetic_image(1, 64, 64, 21);
  pairs.push_back({gray, noisy(gray, "gaussian:25", 1, true)});
  auto colour = test::synthetic_image(3, 48, 40, 22);
  pairs.push_back({colour, noisy(colour, "poisson-gaussian:30/5", 2, true)});
  auto tiny = test::synthetic_image(1, 11, 11, 23);
  pairs.push_back({tiny, noisy(tiny, "saltpepper:0.1", 3, false)});
  auto odd = test::synthetic_image(3, 37, 53, 24);
  pairs.push_back({odd, noisy(odd, "speckle:0.3", 4, false)});
  auto gray2 = test::synthetic_image(1, 50, 70, 25);
  pairs.push_back({gray2, noisy(gray2, "gaussian:5", 5, true)});

  test::TempDir dir;
  std::ofstream manifest(dir / "pairs.txt");
  for (size_t i = 0; i < pairs.size(); ++i) {
    const auto& a = pairs[i].a;
    std::string pa = dir / ("a" + std::to_string(i) + ".f32");
    std::string pb = dir / ("b" + std::to_string(i) + ".f32");
    write_raw(pa, a);
    write_raw(pb, pairs[i].b);
    manifest << pa << ' ' << pb << ' ' << a.size(0) << ' ' << a.size(1) << ' ' << a.size(2) << '\n';
  }
  manifest.close();
  std::ofstream script(dir / "reference.py");
  script << R"(import sys
import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
for line in open(sys.argv[1]):
    pa, pb, c, h, w = line.split()
    shape = (int(c), int(h), int(w))
    a = np.fromfile(pa, dtype='<f4').reshape(shape).astype(np.float64)
    b = np.fromfile(pb, dtype='<f4').reshape(shape).astype(np.float64)
    p = peak_signal_noise_ratio(a, b, data_range=1.0)
    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)
    if shape[0] == 1:
        s = structural_similarity(a[0], b[0], **kw)
    else:
        s = structural_similarity(a, b, channel_axis=0, **kw)
    print(repr(float(p)), repr(float(s)))
)";
  script.close();

  auto result = test::run_command(std::string(test::kSystemPython) + " '" + (dir / "reference.py") +
                                  "' '" + (dir / "pairs.txt") + "'");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  std::istringstream lines(result.output);
  double max_psnr_rel = 0, max_ssim_abs = 0;
  for (size_t i = 0; i < pairs.size(); ++i) {
    SCOPED_TRACE("pair " + std::to_string(i));
    double ref_psnr = 0, ref_ssim = 0;
    ASSERT_TRUE(lines >> ref_psnr >> ref_ssim) << result.output;
    double p = psnr(pairs[i].a, pairs[i].b), s = ssim(pairs[i].a, pairs[i].b);
    EXPECT_NEAR(p, ref_psnr, 1e-6 * std::abs(ref_psnr));
    EXPECT_NEAR(s, ref_ssim, 1e-4);
    max_psnr_rel = std::max(max_psnr_rel, std::abs(p - ref_psnr) / std::abs(ref_psnr));
    max_ssim_abs = std::max(max_ssim_abs, std::abs(s - ref_ssim));
  }
  std::printf("skimage agreement over %zu pairs: PSNR max relative difference %.3g, "
              "SSIM max absolute difference %.3g\n",
              pairs.size(), max_psnr_rel, max_ssim_abs);
}

}  // namespace
}  // namespace bottleneck
