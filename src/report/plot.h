#pragma once

#include <string>
#include <vector>

#include <opencv2/core/mat.hpp>

namespace bottleneck {

struct Series {
  std::string name;        // legend text
  std::vector<double> x;   // e.g. iterations
  std::vector<double> y;   // same length as x; non-finite points are skipped
  cv::Scalar color{0, 0, 0};
};

struct PlotOptions {
  std::string title;
  std::string x_label;
  std::string y_label;
  bool log_y = false;   // log10 axis (values <= 0 skipped)
  int width = 640;
  int height = 360;
};

// A line chart drawn with OpenCV: axes with tick labels, one line per series, legend.
// Empty series give an empty chart with the axes and a "no data yet" note.
cv::Mat plot_lines(const std::vector<Series>& series, const PlotOptions& options);

// Training curves: training loss (log scale) above, validation PSNR (model and noisy input)
// below, against iterations. Written atomically as PNG to `path`.
void write_training_curves(const std::string& path, const std::vector<double>& loss_iters,
                           const std::vector<double>& loss, const std::vector<double>& val_iters,
                           const std::vector<double>& val_psnr,
                           const std::vector<double>& val_psnr_noisy);

}  // namespace bottleneck
