#pragma once

#include <memory>

#include <torch/nn/module.h>

#include "nets/arch_spec.h"

namespace bottleneck {

// Base of every network Bottleneck trains. forward() maps N x C x H x W floats in [0,1], any
// H, W >= 1, to the same shape: inputs are padded to a multiple of 2^depth (reflect where the
// image is large enough, replicate otherwise) and the output is cropped back, so callers never
// care about sizes. Submodule names are stable: the exporter and checkpoints rely on them.
class AutoencoderImpl : public torch::nn::Module {
 public:
  explicit AutoencoderImpl(ArchSpec spec) : spec_(std::move(spec)) {}
  virtual ~AutoencoderImpl() = default;

  virtual torch::Tensor forward(torch::Tensor x) = 0;
  // The bottleneck code of the (padded) input, N x bottleneck x H/2^d x W/2^d: the compact
  // feature vector for anomaly scoring and dimensionality reduction.
  virtual torch::Tensor encode(torch::Tensor x) = 0;
  // The inverse half: the output of an H x W input from its code (encode()'s shape for that
  // input), so decode(encode(x), H, W) is forward(x). Error(kUnsupported) for a network whose
  // output needs more than the code: skips (unet) or a residual head.
  virtual torch::Tensor decode(torch::Tensor code, int64_t height, int64_t width);

  const ArchSpec& spec() const { return spec_; }
  // The dtype the layers compute in: kFloat (default) or kBFloat16. Parameters stay float32
  // (the optimiser's master copy) and are cast per forward pass, so training gets bf16 speed
  // with fp32 updates. Inputs and outputs stay float32 either way; the residual head subtracts
  // the predicted noise from the float32 input, so bf16 rounds the noise estimate, not the image.
  void set_compute_dtype(c10::ScalarType dtype);
  c10::ScalarType compute_dtype() const { return compute_dtype_; }
  // Multiply-accumulates per input pixel of one forward pass (FLOPs ~ 2x this), counted from the
  // layers as they are built.
  double macs_per_pixel() const { return macs_per_pixel_; }

 protected:
  ArchSpec spec_;
  double macs_per_pixel_ = 0;
  c10::ScalarType compute_dtype_ = c10::ScalarType::Float;
};

using Autoencoder = std::shared_ptr<AutoencoderImpl>;

// Builds the network the spec describes (validates it first).
Autoencoder make_model(const ArchSpec& spec);

int64_t parameter_count(const torch::nn::Module& module);

// Puts every 4-D parameter of `module` in channels-last (NHWC) memory, in place; values are
// unchanged. Training on the CPU can run so, with its batches likewise (to_channels_last):
// oneDNN's convolution kernels then skip the layout reorders around every layer. Whether that
// pays depends on the CPU (1.11x on an AVX-512 Xeon, 0.77x on an AVX2 EPYC), so the trainer
// measures it (layout_probe.h).
void use_channels_last(torch::nn::Module& module);
torch::Tensor to_channels_last(const torch::Tensor& x);

// Pads N x C x H x W so H and W are multiples of `multiple` (reflect when the pad is smaller
// than the side, replicate otherwise); the inverse is crop_to(y, H, W).
torch::Tensor pad_to_multiple(const torch::Tensor& x, int multiple);
torch::Tensor crop_to(const torch::Tensor& x, int64_t height, int64_t width);

}  // namespace bottleneck
