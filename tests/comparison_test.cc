#include "report/comparison.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <torch/torch.h>

#include "util/error.h"
#include "test_util.h"

namespace bottleneck {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Expected 8-bit value of a [0,1] sample.
int to_byte(float v) {
  return static_cast<int>(std::nearbyint(std::clamp(v, 0.0f, 1.0f) * 255.0f));
}

struct Geometry {
  int gap;
  int band;
};

// Recovers the gap and band height from the output size and checks them against the contract.
Geometry geometry(const cv::Mat& out, int n, int h, int w) {
  Geometry g{n > 1 ? (out.cols - n * w) / (n - 1) : 0, out.rows - h};
  if (n > 1) {
    EXPECT_EQ(out.cols, n * w + (n - 1) * g.gap);
    EXPECT_GE(g.gap, 4);
    EXPECT_LE(g.gap, 8);
  } else {
    EXPECT_EQ(out.cols, w);
  }
  EXPECT_GT(g.band, 0);
  return g;
}

// The panel's image area must hold the input exactly (RGB tensor -> BGR Mat).
void expect_panel_equals(const cv::Mat& out, const Geometry& g, int index,
                         const torch::Tensor& image) {
  const int c = static_cast<int>(image.size(0));
  const int h = static_cast<int>(image.size(1));
  const int w = static_cast<int>(image.size(2));
  const cv::Mat region = out(cv::Rect(index * (w + g.gap), g.band, w, h));
  const auto a = image.accessor<float, 3>();
  int mismatches = 0;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const cv::Vec3b p = region.at<cv::Vec3b>(y, x);
      for (int k = 0; k < 3; ++k) {
        const int channel = c == 1 ? 0 : 2 - k;  // BGR <- RGB
        mismatches += p[k] != to_byte(a[channel][y][x]);
      }
    }
  EXPECT_EQ(mismatches, 0) << "panel " << index;
}

int dark_pixels(const cv::Mat& m) {
  int n = 0;
  for (int y = 0; y < m.rows; ++y)
    for (int x = 0; x < m.cols; ++x) {
      const cv::Vec3b p = m.at<cv::Vec3b>(y, x);
      n += p[0] < 128 && p[1] < 128 && p[2] < 128;
    }
  return n;
}

TEST(ComparisonTest, LayoutAndExactPixels) {
  const int h = 40, w = 64;
  std::vector<Panel> panels;
  for (int i = 0; i < 3; ++i)
    panels.push_back({test::synthetic_image(3, h, w, 10 + i), "panel" + std::to_string(i),
                      quality_caption(20 + i, 0.5)});
  const cv::Mat out = make_comparison(panels);
  ASSERT_EQ(out.type(), CV_8UC3);
  const Geometry g = geometry(out, 3, h, w);
  for (int i = 0; i < 3; ++i) expect_panel_equals(out, g, i, panels[i].image);
  // The band holds text (dark pixels) above every panel, and the gaps are white.
  for (int i = 0; i < 3; ++i)
    EXPECT_GT(dark_pixels(out(cv::Rect(i * (w + g.gap), 0, w, g.band))), 30) << i;
  const cv::Mat gap = out(cv::Rect(w, 0, g.gap, out.rows));
  EXPECT_EQ(cv::countNonZero(gap.reshape(1) != 255), 0);
}

TEST(ComparisonTest, GrayAndColourMixed) {
  const int h = 33, w = 70;
  const torch::Tensor gray = test::synthetic_image(1, h, w, 1);
  const torch::Tensor colour = test::synthetic_image(3, h, w, 2);
  const cv::Mat out = make_comparison({{gray, "clean", ""}, {colour, "denoised", "x"}});
  const Geometry g = geometry(out, 2, h, w);
  expect_panel_equals(out, g, 0, gray);
  expect_panel_equals(out, g, 1, colour);
}

TEST(ComparisonTest, ValuesAreClippedAndDeviceTypeAgnostic) {
  torch::Tensor img = torch::tensor({-0.5f, 0.0f, 0.5f, 1.0f, 1.7f, 0.25f}).view({1, 2, 3});
  const cv::Mat out = make_comparison({{img.to(torch::kDouble), "t", ""}});
  const int k = 22;  // a 3-pixel-wide image is magnified to 66 >= 64
  const Geometry g = geometry(out, 1, 2 * k, 3 * k);
  const cv::Mat region = out(cv::Rect(0, g.band, 3 * k, 2 * k));
  const int expected[6] = {0, 0, 128, 255, 255, 64};
  for (int i = 0; i < 6; ++i)
    EXPECT_EQ(region.at<cv::Vec3b>(i / 3 * k + k - 1, i % 3 * k)[1], expected[i]) << i;
}

TEST(ComparisonTest, TinyImagesAreMagnifiedByAWholeFactor) {
  const torch::Tensor img = test::synthetic_image(1, 20, 28, 5);  // 28 wide -> x3 = 84
  const cv::Mat out = make_comparison({{img, "clean", ""}, {img, "denoised", "PSNR 30.00 dB"}});
  const Geometry g = geometry(out, 2, 60, 84);
  const auto a = img.accessor<float, 3>();
  int mismatches = 0;
  for (int y = 0; y < 60; ++y)
    for (int x = 0; x < 84; ++x)
      mismatches += out.at<cv::Vec3b>(g.band + y, 84 + g.gap + x)[1] != to_byte(a[0][y / 3][x / 3]);
  EXPECT_EQ(mismatches, 0);
}

TEST(ComparisonTest, TextScalesWithWidth) {
  auto band = [](int w) {
    const torch::Tensor img = torch::full({3, 20, w}, 0.5f);
    const cv::Mat out =
        make_comparison({{img, "noisy", "PSNR 20.17 dB  SSIM 0.412"}, {img, "denoised", ""}});
    return out.rows - 20;
  };
  const int small = band(64), large = band(2000);
  EXPECT_GT(small, 10);
  EXPECT_GT(large, 3 * small / 2);
  EXPECT_LT(large, 20 * small);
}

TEST(ComparisonTest, MismatchedSizesThrow) {
  const torch::Tensor a = torch::zeros({3, 40, 64});
  const torch::Tensor b = torch::zeros({3, 40, 32});
  try {
    make_comparison({{a, "noisy", ""}, {b, "clean", ""}});
    FAIL() << "no exception";
  } catch (const UsageError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("noisy 64x40"), std::string::npos) << msg;
    EXPECT_NE(msg.find("clean 32x40"), std::string::npos) << msg;
  }
  EXPECT_THROW(make_comparison({}), UsageError);
  EXPECT_THROW(make_comparison({{torch::zeros({2, 8, 8}), "two channels", ""}}), UsageError);
  EXPECT_THROW(make_comparison({{torch::zeros({8, 8}), "2-D", ""}}), UsageError);
  EXPECT_THROW(make_comparison({{torch::Tensor(), "none", ""}}), UsageError);
}

TEST(ComparisonTest, QualityCaption) {
  EXPECT_EQ(quality_caption(28.414, 0.8123), "PSNR 28.41 dB  SSIM 0.812");
  EXPECT_EQ(quality_caption(kNaN, 0.5), "SSIM 0.500");
  EXPECT_EQ(quality_caption(30, kNaN), "PSNR 30.00 dB");
  EXPECT_EQ(quality_caption(kNaN, kNaN), "");
}

}  // namespace
}  // namespace bottleneck
