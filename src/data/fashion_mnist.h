#pragma once

#include <string>

#include <torch/types.h>

namespace bottleneck {

// Where Debian's dataset-fashion-mnist package puts the IDX files.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

struct LabelledImages {
  torch::Tensor images;  // N x 1 x 28 x 28 float32 in [0,1]
  torch::Tensor labels;  // N int64, class 0-9
};

// Reads an IDX file (gzip-compressed or raw): unsigned-byte images (magic 0x00000803) or labels
// (0x00000801). Throws Error(path, reason) on a wrong magic, a truncated file or bad sizes.
torch::Tensor read_idx_images(const std::string& path);  // N x 1 x H x W float in [0,1]
torch::Tensor read_idx_labels(const std::string& path);  // N int64

// The train (60000) or test (10000) split from `dir` (train-images-idx3-ubyte[.gz] etc.).
LabelledImages read_fashion_mnist(const std::string& dir, bool train);

}  // namespace bottleneck
