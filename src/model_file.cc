#include "model_file.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <nlohmann/json.hpp>
#include <torch/script.h>
#include <torch/torch.h>

#include "checkpoint.h"
#include "error.h"
#include "exporter.h"
#include "models.h"

namespace bottleneck {

int receptive_radius(const ArchSpec& spec) {
  // Sum over the deepest path of (kernel radius x the scale the layer reads at): 3x3 convs add
  // one pixel of their resolution, a 2x upsampling adds up to one coarse pixel.
  const int convs = spec.convs_per_level;
  int radius = convs;  // level-0 encoder convs
  for (int l = 1; l <= spec.depth(); ++l) {
    radius += 1 << (l - 1);            // stride-2 conv reading level l-1
    radius += (convs - 1) * (1 << l);  // further convs at level l
  }
  for (int l = spec.depth(); l >= 1; --l) {
    radius += 1 << l;                                                     // upsampling
    radius += (convs + (spec.upsample == "bilinear" ? 1 : 0)) * (1 << (l - 1));  // convs at level l-1
  }
  return radius + 1;  // head
}

int InferenceModel::receptive_radius() const { return bottleneck::receptive_radius(info().arch); }

namespace {

class CheckpointModel : public InferenceModel {
 public:
  CheckpointModel(const std::string& path, c10::Device device) {
    LoadedCheckpoint loaded = load_checkpoint(path);
    model_ = loaded.model;
    model_->to(device);
    model_->eval();
    info_.path = path;
    info_.file_kind = "checkpoint";
    info_.arch = loaded.info.arch;
    info_.noise = loaded.info.noise;
    info_.iteration = loaded.info.iteration;
    info_.val_psnr = loaded.info.best_val_psnr;
    info_.project_version = loaded.info.project_version;
    info_.format_version = loaded.info.format_version;
    if (!loaded.info.config_json.empty()) {
      const auto config = nlohmann::json::parse(loaded.info.config_json, nullptr, false);
      if (config.is_object()) info_.train_data = config.value("data", "");
    }
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    torch::NoGradGuard no_grad;
    try {
      return model_->forward(x);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      // LibTorch's messages carry a C++ stack trace; a per-file error must stay one line.
      throw Error(info_.path, "forward failed: " + first_line(e.what()));
    }
  }
  const ModelInfo& info() const override { return info_; }

 private:
  Autoencoder model_;
  ModelInfo info_;
};

// A file written by `bottleneck export`: the script module runs forward(), the metadata comes
// from its extra file.
class TorchScriptModel : public InferenceModel {
 public:
  TorchScriptModel(torch::jit::Module module, ModelInfo info)
      : module_(std::move(module)), info_(std::move(info)) {
    module_.eval();
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    // Checked here as CheckpointModel does, so a bad input reads the same for both kinds
    // instead of as a TorchScript interpreter trace.
    if (x.dim() != 4 || x.size(1) != info_.arch.in_channels)
      throw Error(info_.path, "model expects N x " + std::to_string(info_.arch.in_channels) +
                                  " x H x W input, got " + std::to_string(x.dim()) + " dims" +
                                  (x.dim() >= 2 ? " with " + std::to_string(x.size(1)) + " channels" : ""));
    torch::NoGradGuard no_grad;
    try {
      return module_.forward({x}).toTensor();
    } catch (const std::exception& e) {
      throw Error(info_.path, "forward failed: " + first_line(e.what()));
    }
  }
  const ModelInfo& info() const override { return info_; }

 private:
  torch::jit::Module module_;
  ModelInfo info_;
};

}  // namespace

std::unique_ptr<InferenceModel> load_model(const std::string& path, c10::Device device) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(status)) throw Error(path, "no such file");
  if (std::filesystem::is_directory(status)) throw Error(path, "is a directory, not a model file");

  // Both kinds are torch zip archives that torch::jit::load reads: an export carries our extra
  // file, a checkpoint (a torch::serialize archive) a bottleneck_info attribute. Loading onto the
  // CPU first keeps detection independent of the device.
  torch::jit::ExtraFilesMap extra{{kTorchScriptMetadataFile, ""}};
  torch::jit::Module module;
  try {
    module = torch::jit::load(path, c10::Device(c10::kCPU), extra);
  } catch (const std::exception& e) {
    throw Error(path, "not a readable model file (corrupt or truncated?): " + first_line(e.what()));
  }
  const std::string& metadata = extra[kTorchScriptMetadataFile];
  if (!metadata.empty()) {
    ModelInfo info = parse_export_metadata(path, metadata);
    if (!module.find_method("forward"))
      throw Error(path, "damaged export: the module has no forward()");
    try {
      module.to(device);
    } catch (const std::exception& e) {
      throw Error(path, "cannot move the model to " + device.str() + ": " + first_line(e.what()));
    }
    return std::make_unique<TorchScriptModel>(std::move(module), std::move(info));
  }
  if (module.hasattr("bottleneck_info")) return std::make_unique<CheckpointModel>(path, device);
  throw Error(path, "a torch archive but not a Bottleneck model (neither a checkpoint from "
                    "`bottleneck train` nor a model from `bottleneck export`)");
}

}  // namespace bottleneck
