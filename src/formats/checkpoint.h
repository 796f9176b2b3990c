#pragma once

#include <cstdint>
#include <string>

#include "nets/arch_spec.h"
#include "nets/models.h"

namespace torch::optim { class Optimizer; }
namespace torch::serialize { class InputArchive; }

namespace bottleneck {

// Identifies our checkpoints; bumped when the layout changes incompatibly (docs/formats.md).
inline constexpr const char* kCheckpointFormat = "bottleneck-checkpoint";
inline constexpr int64_t kCheckpointVersion = 1;

// What a checkpoint says about itself, readable without building the model.
struct CheckpointInfo {
  ArchSpec arch;
  std::string config_json;      // the run's resolved TrainOptions
  std::string noise;            // training noise spec text
  int64_t iteration = 0;        // optimisation steps completed
  double best_val_psnr = 0;     // best validation PSNR so far (NaN when never validated)
  double last_val_psnr = 0;     // PSNR of the latest validation (NaN when never validated)
  double loss_window_sum = 0;   // training losses since the last metrics row, so a resumed
  int64_t loss_window_count = 0;  // run logs the same averages as an uninterrupted one
  std::string project_version;  // bottleneck version that wrote it
  int64_t format_version = kCheckpointVersion;
};

// Writes model parameters, optimizer state (if given) and info to `path` atomically
// (temp file + rename): a killed process leaves the previous checkpoint intact.
// The archive every checkpoint kind is: "bottleneck_info" (JSON text), "model" (the module's
// parameters and buffers) and, with an optimiser, "optimizer"; written atomically.
void save_module_archive(const std::string& path, const torch::nn::Module& model,
                         const torch::optim::Optimizer* optimizer, const std::string& info_json);
// Loads such an archive's "model" into `model` (built for the network its info describes),
// checking every tensor's shape, and its "optimizer" into `optimizer` when given; Error naming
// `path` otherwise.
void load_module_state(const std::string& path, torch::serialize::InputArchive& archive, torch::nn::Module& model,
                       torch::optim::Optimizer* optimizer);

void save_checkpoint(const std::string& path, const AutoencoderImpl& model,
                     const torch::optim::Optimizer* optimizer, const CheckpointInfo& info);

// Reads only the info; throws Error(path, reason) for a missing, truncated or foreign file,
// or a version this build cannot read.
CheckpointInfo read_checkpoint_info(const std::string& path);

// The info record's JSON as read_checkpoint_info parses it (also the fuzz target's entry);
// throws Error(path, reason) for damaged or foreign JSON.
CheckpointInfo parse_checkpoint_info(const std::string& path, const std::string& json_text);

// Loads weights (and optimizer state, if given) into objects built from the checkpoint's arch.
void load_checkpoint_state(const std::string& path, AutoencoderImpl& model,
                           torch::optim::Optimizer* optimizer);

// Convenience: info + a model built from it with the weights loaded, in eval mode on the CPU.
struct LoadedCheckpoint {
  CheckpointInfo info;
  Autoencoder model;
};
LoadedCheckpoint load_checkpoint(const std::string& path);

}  // namespace bottleneck
