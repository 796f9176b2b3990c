#pragma once

// `compress --compare`: the original beside our decoded image and OpenCV's JPEG and WebP at the
// same file size, so a user sees what the bytes buy. "The same size" is the highest quality
// setting of each codec whose whole file is at most ours (JPEG and WebP files carry headers too).

#include <cstddef>
#include <string>
#include <vector>

#include <opencv2/core/mat.hpp>
#include <torch/torch.h>

#include "codec/compressor.h"

namespace bottleneck {

struct SizeMatched {
  std::string codec;      // "JPEG", "WebP"
  int quality = 0;        // the codec's own 1..100 setting
  size_t bytes = 0;
  double bpp = 0, psnr = 0;
  bool fits = true;       // false when even quality 1 is larger than the budget (it is used)
  torch::Tensor decoded;  // C x H x W in [0, 1]
};

// `ext` ".jpg" or ".webp": bisects OpenCV's quality setting for the largest file <= max_bytes.
// image: 8-bit gray or BGR.
SizeMatched encode_at_most(const cv::Mat& image, const std::string& ext, size_t max_bytes);

// The strip (8-bit BGR): original | ours | JPEG | WebP, each with bytes, bpp and PSNR.
// image: the 8-bit samples that were coded.
cv::Mat compare_at_equal_size(const cv::Mat& image, const CompressedImage& ours);

}  // namespace bottleneck
