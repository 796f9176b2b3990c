#pragma once

#include <string>

#include <c10/core/ScalarType.h>

#include "nets/arch_spec.h"

namespace bottleneck {

// Training steps per second as the trainer takes them (forward, MSE, backward, Adam) on one
// fixed random batch, so the data pipeline plays no part; in channels-last or NCHW memory.
// At least `min_steps` timed steps after a warm-up, and at least `min_seconds`. Reseeds torch's
// global generator (call it before a run seeds its own).
double training_patches_per_second(const ArchSpec& arch, c10::ScalarType dtype, int batch, int patch,
                                   double min_seconds, bool channels_last, int min_steps = 3);

// The memory layout a CPU training run uses. Which is faster depends on the CPU: channels-last
// was 1.11x NCHW on an AVX-512 Xeon and 0.77x on an AVX2 EPYC (bench row 5), so it is measured
// on the machine that trains, not fixed.
struct TrainingLayout {
  bool channels_last = false;
  double nchw_patches_per_s = 0;           // 0 when not measured
  double channels_last_patches_per_s = 0;
  std::string how;                         // "measured", "measured earlier (FILE)", "asked for", "not a CPU"
};

// requested: "auto", "nchw" or "channels-last" (UsageError otherwise). For "auto" on the CPU, a
// short timed probe of both layouts (about 20 steps of the run's network and batch), whose
// result is kept in `cache_file` with the CPU, thread count and network it holds for: a run
// resumed on the same machine reuses it (and so stays bit-exact), another machine measures again.
TrainingLayout choose_training_layout(const std::string& requested, bool on_cpu, const ArchSpec& arch,
                                      c10::ScalarType dtype, int batch, int patch, int threads,
                                      const std::string& cache_file);

}  // namespace bottleneck
