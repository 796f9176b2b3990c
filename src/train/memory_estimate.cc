#include "train/memory_estimate.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "nets/layer_plan.h"
#include "util/error.h"
#include "util/text_format.h"

namespace bottleneck {

namespace {

// RSS of `bottleneck arch`, which loads LibTorch and builds no tensor: 165-185 MB here (LibTorch
// 1.13, Debian), rounded up for the thread pools and allocator that a training step starts.
// Measured against the whole: a run of 32 patches of 128^2 on widths 16,32 (one thread) peaked
// at 545 MB RSS where this estimate says 706 MB (memory_estimate_test): the estimate errs high,
// as a refusal should.
constexpr int64_t kRuntimeBytes = int64_t{192} << 20;
// Batches alive at once: the one in the step and the loader's (up to 4 ahead, training_loop.cc,
// plus one being built by each worker; one worker by default).
constexpr int kBatchesInFlight = 6;

// Bytes held as double while summing (2^31 patches of 4096^2 pixels overflow int64), then
// saturated at 2e18 so that total() of four parts cannot overflow either.
int64_t saturated(double bytes) {
  return bytes >= 2e18 ? int64_t{2000000000000000000} : static_cast<int64_t>(bytes);
}

}  // namespace

TrainingMemoryEstimate estimate_training_memory(const TrainOptions& o) {
  const LayerPlan plan = make_plan(o.arch);
  const double element = o.precision == "bf16" ? 2 : 4;  // the layers' compute type
  const double n = o.patches.batch;
  const int64_t side = o.patches.patch;  // a multiple of the network's size multiple: no padding
  // Bytes of a tensor of `channels` at resolution level `level`, in the compute type.
  auto tensor = [&](double channels, int level) {
    const double s = static_cast<double>(side >> level);
    return n * channels * s * s * element;
  };

  TrainingMemoryEstimate e;
  double parameters = 0;
  for (const PlanStep* s : plan.layers()) parameters += double{1} * s->in * s->out * s->kernel * s->kernel + s->out;
  e.parameters = saturated(16 * parameters);

  // Every tensor the forward pass makes stays alive for backward: a conv's output, the
  // activation's output, an upsampling's two (the transposed kind's 1x1 conv and pixel shuffle;
  // the bilinear kind's resize and conv) and a skip's sum. Backward then adds the gradients of
  // the largest layer's input and output on top of what it has not freed yet.
  double kept = 0, largest = 0;
  auto keep = [&](double bytes) {
    kept += bytes;
    largest = std::max(largest, bytes);
  };
  const double image_float = n * o.arch.in_channels * static_cast<double>(side * side) * 4;
  keep(o.precision == "bf16" ? tensor(o.arch.in_channels, 0) : 0);  // the input in bf16
  int channels = o.arch.in_channels, level = 0;
  for (const auto* part : {&plan.encoder, &plan.decoder}) {
    for (const PlanStep& s : *part) {
      switch (s.op) {
        case PlanStep::Op::kConv:
          level = s.level + (s.stride == 2 ? 1 : 0);
          channels = s.out;
          keep(tensor(channels, level));
          break;
        case PlanStep::Op::kUp:
          level = s.level - 1;
          keep(plan.upsample == Upsample::kBilinear ? tensor(s.in, level) : tensor(s.out, level));
          channels = s.out;
          keep(tensor(channels, level));
          break;
        case PlanStep::Op::kAddSkip:
          keep(tensor(channels, level));
          continue;
        case PlanStep::Op::kSaveSkip:
          continue;
        case PlanStep::Op::kToLatent:
          keep(n * s.out * element);
          if (s.activate) keep(n * s.out * element);
          continue;
        case PlanStep::Op::kFromLatent:
          level = s.level;
          channels = s.out / (plan.grid * plan.grid);
          keep(tensor(channels, level));
          break;
      }
      if (s.activate) keep(tensor(channels, level));
    }
  }
  keep(tensor(plan.head.out, 0));
  // The output in float, the residual subtraction and the loss's difference and square.
  kept += 4 * image_float;
  e.activations = saturated(kept + 2 * largest);
  e.batches = saturated(kBatchesInFlight * 2 * image_float);
  e.runtime = kRuntimeBytes;
  return e;
}

int64_t available_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("MemAvailable:", 0) != 0) continue;
    std::istringstream fields(line.substr(13));
    int64_t kb = 0;
    std::string unit;
    if (fields >> kb >> unit && unit == "kB" && kb > 0) return kb * 1024;
    return 0;
  }
  return 0;
}

std::string memory_text(int64_t bytes) {
  const double mb = static_cast<double>(bytes) / (1 << 20);
  if (mb < 1024) return fixed(mb, 0) + " MB";
  return fixed(mb / 1024, mb < 10 * 1024 ? 2 : 1) + " GB";
}

void refuse_training_that_cannot_fit(const TrainOptions& o, int64_t available_bytes) {
  if (o.task != "denoise" || available_bytes <= 0) return;
  const TrainingMemoryEstimate e = estimate_training_memory(o);
  if (e.total() <= available_bytes) return;
  throw UsageError("a training step of " + std::to_string(o.patches.batch) + " patches of " + std::to_string(o.patches.patch) +
                   " x " + std::to_string(o.patches.patch) + " needs about " + memory_text(e.total()) + " (activations " +
                   memory_text(e.activations) + ", parameters and Adam " + memory_text(e.parameters) + ", batches " +
                   memory_text(e.batches) + ", runtime " + memory_text(e.runtime) + ") but only " +
                   memory_text(available_bytes) +
                   " is available (MemAvailable): use a smaller batch or patch");
}

}  // namespace bottleneck
