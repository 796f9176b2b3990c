#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "distributed/distributed_env.h"
#include "util/log.h"
#include "runtime/runtime.h"
#include "train/train_config.h"

namespace bottleneck {

// How this invocation of a run is driven (not part of the run's definition, so not in the
// config): a later `--resume` may use different values.
struct TrainControl {
  bool resume = false;                     // continue RUN_DIR/last.ckpt instead of starting
  const std::atomic<bool>* stop = nullptr; // set asynchronously (SIGINT/SIGTERM): finish the
                                           // current step, write `last`, return
  int64_t stop_after = 0;                  // stop after this many steps of this invocation; 0 = no limit
  double time_limit_s = 0;                 // stop after this many seconds of training; 0 = no limit
  bool progress_tty = false;               // redraw the progress line in place
  std::string layout = "auto";             // CPU memory layout: "auto" (the faster here, measured
                                           // once per machine and kept in RUN_DIR/layout.json),
                                           // "nchw" or "channels-last"
  DistributedOptions distributed;          // this process's rank in a data-parallel run (from the
                                           // launcher's environment) and --dist-timeout
};

struct TrainResult {
  int64_t iteration = 0;         // steps completed in the run (all invocations)
  bool finished = false;         // reached options.iterations
  double best_val_psnr = 0;      // NaN without validation
  double last_val_psnr = 0;      // NaN without validation
  double last_val_psnr_noisy = 0;
  double patches_per_second = 0; // training throughput of this invocation (with the loader)
  double seconds = 0;            // wall time of this invocation's training loop
  // Inputs this invocation skipped as unreadable ("FILE: reason", also logged as warnings):
  // files and folders of the training set, and of the validation set.
  std::vector<std::string> skipped_training, skipped_validation;
};

// Trains (or resumes) the run described by `options` in options.out_dir:
//   config.json   the resolved options      metrics.csv  loss, lr and validation rows
//   curves.png    loss and PSNR curves      samples/     clean | noisy | denoised strips
//   last.ckpt     latest state (resumable)  best.ckpt    best validation PSNR
// Files are replaced atomically. Batches and noise are pure functions of (seed, step), so a run
// stopped at any point and resumed ends with the same weights as an uninterrupted one (on the
// CPU with the same thread count). Throws Error on bad data or a non-finite loss (the last good
// checkpoint is kept), UsageError on bad options.
TrainResult train(const TrainOptions& options, const TrainControl& control, const Runtime& runtime,
                  const Logger& log);

// Learning rate at step `it` (0-based) of the schedule.
double learning_rate(const TrainOptions& options, int64_t it);

// Seed of the validation noise: fixed, so every run and resumed run is judged on the same inputs.
inline constexpr uint64_t kValidationNoiseSeed = 0x76616c6964ULL;

}  // namespace bottleneck
