#pragma once

// The one mapping between the loop's state (train/objective.h) and an autoencoder checkpoint
// (formats/checkpoint.h), for every objective whose network is an Autoencoder: denoising
// (train/trainer.cc) and reconstruction (anomaly/reconstruct_trainer.cc). The codec has a file
// format of its own (codec/codec_file.h).

#include <string>

#include "formats/checkpoint.h"
#include "train/objective.h"

namespace bottleneck {

// What the objective alone knows of its run; the rest of the checkpoint comes from LoopState.
struct AutoencoderRunFacts {
  ArchSpec arch;
  std::string noise;            // training noise spec text
  double last_val_psnr = 0;     // NaN when never validated
};

void save_autoencoder_checkpoint(const std::string& path, const AutoencoderImpl& model,
                                 const torch::optim::Optimizer* optimizer, const LoopState& state,
                                 const AutoencoderRunFacts& facts);

// Loads weights (and the optimiser's state, if given) into `model` and returns the loop's state;
// `last_val_psnr` receives the stored latest validation figure.
LoopState load_autoencoder_checkpoint(const std::string& path, AutoencoderImpl& model,
                                      torch::optim::Optimizer* optimizer, double& last_val_psnr);

}  // namespace bottleneck
