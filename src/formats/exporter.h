#pragma once

#include <cstdint>
#include <string>

#include <c10/core/Device.h>
#include <torch/script.h>

#include "nets/arch_spec.h"
#include "formats/checkpoint.h"
#include "formats/model_file.h"
#include "nets/models.h"

// Exports trained networks as TorchScript archives that `torch.jit.load` (Python) and
// `torch::jit::load` (C++) read without Bottleneck.
//
// LibTorch cannot script a C++ torch::nn::Module, so the exporter builds a torch::jit::Module
// by hand: every parameter of the trained network becomes a parameter of the script module
// (name "enc0_conv0.weight" -> "enc0_conv0_weight"), and forward()/encode() are TorchScript
// source generated from the network's layer plan (nets/layer_plan.h), the one models.cc builds
// and runs. The generator records the shape of every parameter its source uses; the export
// fails unless that set equals the native module's parameters exactly, so a network whose
// structure the generator no longer follows cannot be exported silently wrong.

namespace bottleneck {

// Identifies our exports among TorchScript files; the version is bumped when the metadata or
// the module's methods change incompatibly (docs/formats.md).
inline constexpr const char* kTorchScriptFormat = "bottleneck-torchscript";
inline constexpr int64_t kTorchScriptVersion = 1;
// The TorchScript extra file (stored as extra/bottleneck.json in the archive) holding the metadata.
inline constexpr const char* kTorchScriptMetadataFile = "bottleneck.json";

// The TorchScript source of the methods for `spec`: forward(x) (the denoiser, padding and
// cropping included) and encode(x) (the bottleneck code of the padded input). Uses only
// builtins that LibTorch's native resolver knows (torch.conv2d, torch.reflection_pad2d, ...).
std::string torchscript_source(const ArchSpec& spec);

// Builds the script module of a trained network: parameters copied as float32, contiguous,
// without gradient, onto `device`; methods defined from torchscript_source(model.spec()).
// Throws Error if the network's parameters differ from the ones the source uses.
torch::jit::Module to_torchscript(const AutoencoderImpl& model, c10::Device device);

// The attribute name a parameter gets in an export: "enc0_conv0.weight" -> "enc0_conv0_weight".
std::string flat_name(std::string name);

// The metadata JSON written as kTorchScriptMetadataFile, from the checkpoint's info.
std::string export_metadata_json(const CheckpointInfo& info);

// Parses and checks the metadata of an export; throws Error(path, reason) for a foreign format,
// a newer format version or damaged JSON. file_kind is "torchscript".
ModelInfo parse_export_metadata(const std::string& path, const std::string& json_text);

struct ExportOptions {
  std::string checkpoint;  // training checkpoint to export (last.ckpt, best.ckpt); required
  std::string output;      // TorchScript file to write, atomically; required
  c10::Device device = c10::Device(c10::kCPU);  // where the weights live in the file: cpu loads
                                                // everywhere, cuda needs a GPU (or map_location)
};

struct ExportResult {
  ModelInfo info;          // the metadata written, as load_model reports it
  int64_t parameters = 0;  // number of weights in the file
};

// Loads the checkpoint, exports it and checks the file by loading it back: the reloaded module
// must reproduce the native network on a test input. Throws Error(path, reason).
ExportResult export_model(const ExportOptions& options);

}  // namespace bottleneck
