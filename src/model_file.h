#pragma once

#include <memory>
#include <string>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "arch_spec.h"

namespace at { class Tensor; }

namespace bottleneck {

// What a model file says about the network in it, whichever kind of file it is.
struct ModelInfo {
  std::string path;
  std::string file_kind;        // "checkpoint" or "torchscript"
  ArchSpec arch;
  std::string noise;            // the noise it was trained for, e.g. "gaussian:0-55"
  int64_t iteration = 0;        // training steps
  double val_psnr = 0;          // best validation PSNR, dB (NaN if unknown)
  std::string train_data;       // training data folder as given to `train` ("" if unknown)
  std::string project_version;  // bottleneck version that wrote the file
  int64_t format_version = 0;   // version of the file's format
};

// A trained denoiser ready for inference: forward() maps N x C x H x W floats in [0,1] (any
// H, W >= 1, C = info().arch.in_channels) to the denoised tensor of the same shape.
class InferenceModel {
 public:
  virtual ~InferenceModel() = default;
  virtual at::Tensor forward(const at::Tensor& x) = 0;
  virtual const ModelInfo& info() const = 0;
  int channels() const { return info().arch.in_channels; }
  // Pixels of context on each side that influence an output pixel: overlapping tiles need at
  // least this much margin to be exact.
  int receptive_radius() const;
};

// Loads a training checkpoint (.ckpt) or an exported TorchScript model (bottleneck export),
// deciding by content, not by extension, onto `device`, computing in `dtype` (kFloat, or
// kBFloat16: about twice as fast on CPUs with AVX512-BF16, a few hundredths of a dB lower).
// Throws Error(path, reason) with a one-line reason for anything else: missing, truncated or
// corrupt files, foreign archives, versions this build cannot read.
// fp32 on the CPU is optimised for inference (frozen TorchScript of the same network, about 1.2x
// faster) unless `optimize` is false, which benchmarks use to measure that gain.
std::unique_ptr<InferenceModel> load_model(const std::string& path, c10::Device device,
                                           c10::ScalarType dtype = c10::ScalarType::Float,
                                           bool optimize = true);

// "fp32" -> kFloat, "bf16" -> kBFloat16; UsageError otherwise.
c10::ScalarType parse_precision(const std::string& name);

// Receptive radius of the network a spec describes, in input pixels.
int receptive_radius(const ArchSpec& spec);

}  // namespace bottleneck
