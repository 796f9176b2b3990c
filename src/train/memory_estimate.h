#pragma once

#include <cstdint>
#include <string>

#include "train/train_config.h"

namespace bottleneck {

// What one training step of a denoiser holds in memory at its peak, in bytes, by part. From the
// layer plan alone (torch-free), so that a run that cannot fit is refused before it loads data or
// creates its run directory, instead of being killed by the kernel's OOM killer mid-step.
struct TrainingMemoryEstimate {
  int64_t parameters = 0;   // weights, their gradients and Adam's two moments: 16 bytes each
  int64_t activations = 0;  // what the forward pass keeps for backward, plus backward's transients
  int64_t batches = 0;      // clean and noisy batches: the step's and those the loader builds ahead
  int64_t runtime = 0;      // the process before training: code, LibTorch, its thread pools
  int64_t total() const { return parameters + activations + batches + runtime; }
};

// The estimate for options.arch, options.patches.batch patches of options.patches.patch^2 pixels, in
// options.precision. Not counted: the training images held by the dataset and the validation
// pass (whole images, without gradients), both outside the step.
TrainingMemoryEstimate estimate_training_memory(const TrainOptions& options);

// MemAvailable of /proc/meminfo (what can be allocated without swapping), in bytes; 0 when
// the file or the line is missing.
int64_t available_memory_bytes();

// Throws a usage Error when the estimate is more than `available_bytes` (0 = unknown: accepts),
// giving both numbers and the parts. --task compress is not estimated yet (accepted).
void refuse_training_that_cannot_fit(const TrainOptions& options, int64_t available_bytes);

// "1.5 GB", "230 MB": memory sizes for messages (powers of 1024).
std::string memory_text(int64_t bytes);

}  // namespace bottleneck
