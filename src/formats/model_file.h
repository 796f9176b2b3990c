#pragma once

#include <memory>
#include <string>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "nets/arch_spec.h"

namespace at { class Tensor; }
namespace torch::nn { class Module; }

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

// How load_model prepares a model.
struct LoadOptions {
  c10::ScalarType dtype = c10::ScalarType::Float;  // compute dtype: kFloat, or kBFloat16 (about
                                                   // twice as fast on CPUs with AVX512-BF16, a
                                                   // few hundredths of a dB lower)
  bool optimize = true;  // fp32 on the CPU: run a frozen TorchScript of the same network
                         // optimised for inference (about 1.3x faster); false = native modules
  bool probe = true;     // load the file in a forked child first, so a file that crashes
                         // LibTorch's unpickler is an Error, not the end of the process
                         // (fuzz targets turn it off to see those crashes)
};

// Loads a training checkpoint (.ckpt) or an exported TorchScript model (bottleneck export),
// deciding by content, not by extension, onto `device`. Throws Error(path, reason) with a
// one-line reason for anything else: missing, truncated or corrupt files, foreign archives,
// versions this build cannot read, files that crash LibTorch's loader.
std::unique_ptr<InferenceModel> load_model(const std::string& path, c10::Device device,
                                           const LoadOptions& options = {});

// A model file's own network (not the CPU-optimised graph load_model may run), for tasks that
// need more of it than forward(): encode() and decode() for latents. In eval mode, float32, on
// the CPU. `metadata_json` is the export's bottleneck.json ("" for a checkpoint);
// `config_json` the run's resolved training options ("" when the file does not hold them).
struct LoadedNetwork {
  ModelInfo info;
  std::shared_ptr<class AutoencoderImpl> model;
  std::string metadata_json;
  std::string config_json;
};
LoadedNetwork load_network(const std::string& path);

// Copies the weights of a model file (checkpoint or export, as load_model reads them) into
// `target`, a freshly made network of `arch` (fine-tuning starts from them). The file's network
// must be `arch` exactly: anything else is a UsageError naming both.
void copy_weights(const std::string& path, const ArchSpec& arch, torch::nn::Module& target);

// "fp32" -> kFloat, "bf16" -> kBFloat16; UsageError otherwise.
c10::ScalarType parse_precision(const std::string& name);

// LoadOptions with the dtype of a --precision value (the rest default).
LoadOptions load_options(const std::string& precision);

// Loads `path` with LibTorch in a forked child and throws Error(path, "a damaged or hostile
// model file: ...") when the child dies: LibTorch's unpickler can be crashed by a crafted archive,
// which no handler catches. Every reader of torch archives calls it before loading in-process
// (load_model with LoadOptions::probe; the codec's model files). A child still loading after
// load_probe_timeout_s() is killed and the file refused ("FILE: loading it did not finish within
// N s ...").
void refuse_if_it_crashes_the_loader(const std::string& path);

// Seconds the probe waits: kDefaultLoadTimeoutS (a minute: LibTorch reads the shipped models, and
// checkpoints of the largest preset, in well under a second), or the environment's
// BOTTLENECK_LOAD_TIMEOUT_S (seconds, > 0; tests set it low). Throws UsageError for a bad value.
inline constexpr double kDefaultLoadTimeoutS = 60;
inline constexpr const char* kLoadTimeoutVariable = "BOTTLENECK_LOAD_TIMEOUT_S";
double load_probe_timeout_s();

// Receptive radius of the network a spec describes, in input pixels.
int receptive_radius(const ArchSpec& spec);

}  // namespace bottleneck
