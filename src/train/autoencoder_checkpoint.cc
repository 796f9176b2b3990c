#include "train/autoencoder_checkpoint.h"

#include "bottleneck/version.h"

namespace bottleneck {

void save_autoencoder_checkpoint(const std::string& path, const AutoencoderImpl& model,
                                 const torch::optim::Optimizer* optimizer, const LoopState& state,
                                 const AutoencoderRunFacts& facts) {
  CheckpointInfo info;
  info.arch = facts.arch;
  info.noise = facts.noise;
  info.last_val_psnr = facts.last_val_psnr;
  info.config_json = state.config_json;
  info.iteration = state.iteration;
  info.best_val_psnr = state.best;
  info.loss_window_sum = state.loss_sum;
  info.loss_window_count = state.loss_count;
  info.project_version = kVersion;
  save_checkpoint(path, model, optimizer, info);
}

LoopState load_autoencoder_checkpoint(const std::string& path, AutoencoderImpl& model,
                                      torch::optim::Optimizer* optimizer, double& last_val_psnr) {
  load_checkpoint_state(path, model, optimizer);
  const CheckpointInfo info = read_checkpoint_info(path);
  LoopState state;
  state.iteration = info.iteration;
  state.best = info.best_val_psnr;
  state.loss_sum = info.loss_window_sum;
  state.loss_count = info.loss_window_count;
  state.config_json = info.config_json;
  last_val_psnr = info.last_val_psnr;
  return state;
}

}  // namespace bottleneck
