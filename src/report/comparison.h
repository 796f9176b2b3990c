#pragma once

#include <string>
#include <vector>

#include <opencv2/core/mat.hpp>
#include <torch/types.h>

namespace bottleneck {

// One panel of a side-by-side comparison.
struct Panel {
  torch::Tensor image;  // C x H x W float (values clipped to [0,1] for display), C = 1 or 3
  std::string title;    // e.g. "noisy"
  std::string caption;  // e.g. "PSNR 20.17 dB  SSIM 0.412"; may be empty
};

// Panels side by side (same H x W), each with its title and caption on a band above the image,
// separated by a thin gap: 8-bit BGR, ready for imwrite. Text scales with the image width so it
// stays legible on both 64-pixel and 4000-pixel images; images narrower than 64 pixels are
// magnified by a whole factor (nearest neighbour) to at least 64.
cv::Mat make_comparison(const std::vector<Panel>& panels);

// "PSNR 28.41 dB  SSIM 0.812" (either may be NaN = unknown and is then left out).
std::string quality_caption(double psnr, double ssim);

}  // namespace bottleneck
