#pragma once

// The seam between the one training loop (train/training_loop.h) and a task: the loop owns the
// run directory, the optimiser and its learning-rate schedule, the step order, stopping, the
// metrics rows, the best-checkpoint rule and every write; an objective owns the network, the
// data, the loss of a batch, its running figures and its validation. Denoising
// (train/trainer.cc) and the codec (codec/codec_trainer.cc) are objectives; anomaly
// reconstruction plugs in here; data-parallel training is the loop's (an objective only passes
// data_shard() to its batches).

#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "data/dataset.h"
#include "train/metrics_log.h"
#include "train/run_directory.h"

namespace bottleneck {

// What the loop knows of a run at a step; objectives store it in their checkpoints.
struct LoopState {
  int64_t iteration = 0;   // steps completed
  double best = 0;         // best validation figure so far (NaN when never validated)
  double loss_sum = 0;     // training losses since the last metrics row, so that a resumed run
  int64_t loss_count = 0;  // logs the same averages as an uninterrupted one
  std::string config_json; // the run's resolved options (train_config.h)
};

struct ValidationOutcome {
  std::vector<double> figures;  // in validation_columns() order
  double figure = 0;            // the figure best.ckpt is chosen by (see lower_is_better)
  std::string summary;          // for the log: "PSNR 30.12 dB (noisy 20.17), SSIM ..."
};

class TrainingObjective {
 public:
  virtual ~TrainingObjective() = default;

  virtual torch::nn::Module& module() = 0;
  // The log line that opens training: "unet (123 parameters, ...)".
  virtual std::string describe() const = 0;
  virtual std::string progress_label() const = 0;
  // Pixels of the training set, for options.epochs.
  virtual double training_pixels() const = 0;
  // Batch `index` of the run: a pure function of (seed, index, data_shard()); called on loader
  // threads. Pass data_shard() to PatchDataset::batch: the loop refuses a batch of another shard.
  virtual TrainBatch make_batch(int64_t index) const = 0;
  // Set by the loop before the first batch: the part of every step's batch this process trains
  // on (data-parallel training; {0, 1} in a single process).
  const DataShard& data_shard() const { return shard_; }
  void set_data_shard(const DataShard& shard) { shard_ = shard; }

  // The loss of step `iteration` (0-based) on its batch, a scalar with a graph. The objective
  // records the step's own running figures here (they appear in the next metrics row).
  virtual torch::Tensor loss(const TrainBatch& batch, int64_t iteration) = 0;
  // Between backward and the optimiser's step (gradient clipping).
  virtual void before_update() {}

  // Metrics columns after iteration, lr and loss (the running figures), and the validation
  // columns after those; patches_per_s and elapsed_s close every row.
  virtual std::vector<std::string> step_columns() const { return {}; }
  virtual std::vector<std::string> validation_columns() const { return {}; }
  // The running figures since the last row, in step_columns() order; resets them.
  virtual std::vector<double> take_step_figures() { return {}; }

  virtual bool can_validate() const = 0;
  virtual bool lower_is_better() const = 0;
  // Validates the network as it is now (writing samples through `run`); leaves its mode as found.
  virtual ValidationOutcome validate(const RunDirectory& run, int64_t iteration) = 0;
  // The figure best.ckpt is chosen by, for the log: "30.12 dB", "RD 2.4257".
  virtual std::string figure_text(double figure) const = 0;
  // " | val 30.12 dB" after the latest validation, "" before.
  virtual std::string progress_suffix() const { return ""; }

  // Checkpoints in the task's own format, with the loop's state and, for `last`, the optimiser.
  virtual void save_checkpoint(const std::string& path, const torch::optim::Optimizer* optimizer,
                               const LoopState& state) const = 0;
  // Loads `path` (written by save_checkpoint) into the network and optimiser; returns the state.
  virtual LoopState load_checkpoint(const std::string& path, torch::optim::Optimizer* optimizer) = 0;
  // After the resume load, before the first step (e.g. converting weights to channels-last).
  virtual void prepare_for_training() {}

  virtual void write_curves(const std::string& path, const MetricsLog& metrics) const = 0;

 private:
  DataShard shard_;
};

}  // namespace bottleneck
