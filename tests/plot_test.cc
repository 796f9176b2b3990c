#include "report/plot.h"

#include <cmath>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "util/error.h"
#include "test_util.h"

namespace bottleneck {
namespace {

const cv::Scalar kRed(0, 0, 255);    // BGR
const cv::Scalar kGreen(0, 160, 0);  // BGR
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Pixels within `tolerance` of `color` in every channel (anti-aliased edges are not counted).
int count_near(const cv::Mat& img, const cv::Scalar& color, int tolerance = 30) {
  int n = 0;
  for (int y = 0; y < img.rows; ++y)
    for (int x = 0; x < img.cols; ++x) {
      const cv::Vec3b p = img.at<cv::Vec3b>(y, x);
      bool near = true;
      for (int c = 0; c < 3; ++c) near = near && std::abs(p[c] - color[c]) <= tolerance;
      n += near;
    }
  return n;
}

Series ramp(const std::string& name, int n, double slope, cv::Scalar color) {
  Series s{name, {}, {}, color};
  for (int i = 0; i < n; ++i) {
    s.x.push_back(i * 100.0);
    s.y.push_back(1 + slope * i);
  }
  return s;
}

TEST(PlotTest, SizeMatchesOptions) {
  for (auto [w, h] : {std::pair{640, 360}, std::pair{300, 200}, std::pair{1600, 900}}) {
    PlotOptions o;
    o.width = w;
    o.height = h;
    o.title = "t";
    o.x_label = "iteration";
    o.y_label = "loss";
    const cv::Mat img = plot_lines({ramp("a", 50, 0.5, kRed)}, o);
    EXPECT_EQ(img.cols, w);
    EXPECT_EQ(img.rows, h);
    EXPECT_EQ(img.type(), CV_8UC3);
  }
}

TEST(PlotTest, SeriesColoursAppear) {
  PlotOptions o;
  const cv::Mat none = plot_lines({}, o);
  EXPECT_EQ(count_near(none, kRed), 0);
  EXPECT_EQ(count_near(none, kGreen), 0);
  // Background is white: most pixels of any chart are.
  EXPECT_GT(count_near(none, cv::Scalar(255, 255, 255), 0), o.width * o.height / 2);

  const cv::Mat img = plot_lines({ramp("up", 100, 0.5, kRed), ramp("down", 100, -0.3, kGreen)}, o);
  // Two ~500-pixel-long lines, 2 pixels wide, plus the legend samples.
  EXPECT_GT(count_near(img, kRed), 400);
  EXPECT_GT(count_near(img, kGreen), 400);
}

TEST(PlotTest, LineFollowsTheData) {
  // A rising line: its red pixels in the left third sit lower (larger row) than in the right third.
  PlotOptions o;
  const cv::Mat img = plot_lines({ramp("", 100, 1.0, kRed)}, o);
  double left_rows = 0, right_rows = 0;
  int left_n = 0, right_n = 0;
  for (int y = 0; y < img.rows; ++y)
    for (int x = 0; x < img.cols; ++x) {
      const cv::Vec3b p = img.at<cv::Vec3b>(y, x);
      if (!(p[2] > 220 && p[1] < 40 && p[0] < 40)) continue;
      if (x < img.cols / 3) left_rows += y, ++left_n;
      if (x > 2 * img.cols / 3) right_rows += y, ++right_n;
    }
  ASSERT_GT(left_n, 20);
  ASSERT_GT(right_n, 20);
  EXPECT_GT(left_rows / left_n, right_rows / right_n + 100);
}

TEST(PlotTest, LogScaleSkipsNonPositiveValues) {
  PlotOptions o;
  o.log_y = true;
  Series s{"loss", {0, 1, 2, 3, 4, 5, 6}, {1, 0, -1, 0.1, 0.01, kNaN, 0.001}, kRed};
  const cv::Mat img = plot_lines({s}, o);
  EXPECT_EQ(img.cols, o.width);
  EXPECT_GT(count_near(img, kRed), 100);
  // Only non-positive values: nothing to draw, still a chart.
  Series bad{"loss", {0, 1}, {0, -2}, kRed};
  const cv::Mat empty = plot_lines({bad}, o);
  EXPECT_EQ(empty.rows, o.height);
  EXPECT_EQ(count_near(empty, kRed), 0);
}

TEST(PlotTest, LogScaleSmallAndLargeRanges) {
  PlotOptions o;
  o.log_y = true;
  for (double hi : {0.0013, 0.05, 1e6}) {
    Series s{"", {0, 1, 2}, {0.0012, (0.0012 + hi) / 2, hi}, kRed};
    const cv::Mat img = plot_lines({s}, o);
    EXPECT_GT(count_near(img, kRed), 100) << hi;
  }
}

TEST(PlotTest, DegenerateSeries) {
  PlotOptions o;
  // One point: drawn as a dot.
  const cv::Mat one = plot_lines({Series{"one", {5}, {3}, kRed}}, o);
  EXPECT_GT(count_near(one, kRed), 10);
  // Constant values: the range is padded and the line drawn.
  const cv::Mat flat = plot_lines({Series{"flat", {0, 1, 2, 3}, {7, 7, 7, 7}, kRed}}, o);
  EXPECT_GT(count_near(flat, kRed), 300);
  // Non-finite values are skipped; the others are still drawn.
  const cv::Mat holes =
      plot_lines({Series{"holes", {0, 1, kNaN, 3, 4}, {1, kInf, 2, -kInf, 3}, kRed}}, o);
  EXPECT_GT(count_near(holes, kRed), 300);
  // Empty series next to a full one, and all empty.
  const cv::Mat mixed = plot_lines({Series{"empty", {}, {}, kGreen}, ramp("r", 10, 1, kRed)}, o);
  EXPECT_GT(count_near(mixed, kRed), 300);
  const cv::Mat empty = plot_lines({Series{"empty", {}, {}, kGreen}}, o);
  EXPECT_EQ(empty.cols, o.width);
  EXPECT_EQ(count_near(empty, kGreen), 0);
  // Huge and tiny magnitudes.
  const cv::Mat big = plot_lines({Series{"", {0, 1e9}, {-1e-9, 1e-9}, kRed}}, o);
  EXPECT_GT(count_near(big, kRed), 300);
}

TEST(PlotTest, BadInputThrows) {
  PlotOptions o;
  EXPECT_THROW(plot_lines({Series{"x", {1, 2}, {1}, kRed}}, o), UsageError);
  o.width = 10;
  EXPECT_THROW(plot_lines({}, o), UsageError);
}

TEST(PlotTest, TrainingCurvesPng) {
  test::TempDir dir;
  const std::string path = dir / "curves.png";
  std::vector<double> iters, loss, val_iters, psnr, noisy;
  for (int i = 1; i <= 200; ++i) {
    iters.push_back(i * 50);
    loss.push_back(0.05 / std::sqrt(i) + 0.001);
  }
  for (int i = 1; i <= 10; ++i) {
    val_iters.push_back(i * 1000);
    psnr.push_back(24 + 2 * std::log(i));
    noisy.push_back(20.2);
  }
  write_training_curves(path, iters, loss, val_iters, psnr, noisy);
  const cv::Mat img = cv::imread(path, cv::IMREAD_UNCHANGED);
  ASSERT_FALSE(img.empty());
  EXPECT_EQ(img.cols, 800);
  EXPECT_EQ(img.rows, 720);
  EXPECT_EQ(img.type(), CV_8UC3);
  // Loss in blue on the top half, model PSNR in red on the bottom half (BGR).
  const cv::Mat top = img(cv::Rect(0, 0, 800, 360));
  const cv::Mat bottom = img(cv::Rect(0, 360, 800, 360));
  const cv::Scalar blue(180, 119, 31), red(40, 39, 214), gray(140, 140, 140);
  EXPECT_GT(count_near(top, blue), 300);
  EXPECT_EQ(count_near(bottom, blue), 0);
  EXPECT_GT(count_near(bottom, red), 300);
  // Anti-aliased text has grays too: the noisy-input line adds many more.
  EXPECT_GT(count_near(bottom, gray, 6), count_near(top, gray, 6) + 300);
  EXPECT_EQ(count_near(top, red), 0);

  // Rewriting (nothing measured yet) replaces the file and leaves no temporary behind.
  write_training_curves(path, {}, {}, {}, {}, {});
  const cv::Mat again = cv::imread(path);
  ASSERT_FALSE(again.empty());
  EXPECT_EQ(again.size(), cv::Size(800, 720));
  EXPECT_EQ(count_near(again, blue), 0);
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    ++files;
    EXPECT_EQ(entry.path().filename(), "curves.png");
  }
  EXPECT_EQ(files, 1);
}

TEST(PlotTest, TrainingCurvesUnwritablePathThrows) {
  test::TempDir dir;
  EXPECT_THROW(write_training_curves(dir / "missing/sub/curves.png", {1}, {1}, {}, {}, {}), Error);
}

}  // namespace
}  // namespace bottleneck
